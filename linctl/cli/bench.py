"""`linctl bench`: time and memory of attention variants and whole models against sequence length."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from linctl.cli.options import JsonOpt, OverridesOpt, build_options, stdout
from linctl.progress import note


def bench(
    ctx: typer.Context,
    level: Annotated[
        str | None,
        typer.Option(
            metavar="LEVEL", help="attention: one block; model: a whole model [default: attention]."
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            metavar="MODE", help="inference: forward; train: + backward + AdamW step [default: inference]."
        ),
    ] = None,
    seq_len: Annotated[
        str | None, typer.Option(help="Sequence lengths, e.g. 512,1024,4096 [default: 512].")
    ] = None,
    k: Annotated[str | None, typer.Option(help="Linformer projected lengths [default: 128,256].")] = None,
    sharing: Annotated[
        str | None,
        typer.Option(metavar="SHARING", help="Sharing of the projections [default: layerwise]."),
    ] = None,
    attention: Annotated[
        str | None,
        typer.Option(
            metavar="KINDS",
            help="Only these attention kinds or labels (as in the table), comma-separated "
            "[default: every kind].",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="PRESET",
            help="Model sizes; seq2seq: the WMT14 encoder-decoder, seq2seq-encoder: its encoder alone "
            "[default: base].",
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            help="YAMLs with a model section (e.g. run configs) instead of --preset, comma-separated; "
            "several are compared as whole models, the first as the baseline (with --level model)."
        ),
    ] = None,
    overrides: OverridesOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per batch [default: 1].")] = None,
    max_batch: Annotated[
        bool, typer.Option(help="Search the largest batch that fits the memory budget, and time that.")
    ] = False,
    memory_budget: Annotated[
        str | None,
        typer.Option(
            help="Working-memory budget for --max-batch, e.g. 2GiB [default: the device; CPU: 80% of free]."
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            metavar="PRECISION",
            help="Inference runs in it; training autocasts to it over fp32 weights [default: fp32].",
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            metavar="DEVICE",
            help="Where to run: auto is cuda when a GPU is visible, else cpu [default: auto].",
        ),
    ] = None,
    warmup: Annotated[
        int | None,
        typer.Option(help="Untimed runs before the timed ones; the first two always happen [default: 1]."),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Timed runs per case (per round: kept cases take turns run by run) [default: 5]."),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(
            help="Time the cases of a length in turn this many times, each kept in its own process; rows "
            "give the median over rounds, speed-ups the median of the per-round ratios "
            "[default: 5 when several cases are compared, 1 with --max-batch]."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads per case [default: the cores idle when the bench starts, at most torch's "
            "default]."
        ),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds one case may take [default: 600].")] = None,
    peers: Annotated[
        bool,
        typer.Option(
            help="Add transformers' BERT and the linformer package (extra 'peers') at --level model."
        ),
    ] = False,
    padded: Annotated[
        bool,
        typer.Option(
            help="Four batches of lengths drawn from [n/4, n] per repeat instead of one full batch."
        ),
    ] = False,
    paper: Annotated[
        bool,
        typer.Option(help="Show the Linformer paper's Table 3 and the eager-softmax speed-up beside ours."),
    ] = False,
    json: JsonOpt = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write the rows as CSV to this file.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Plot time and memory against n (log-log) to this image.")
    ] = None,
) -> None:
    """Time and memory of every attention kind (or whole models) against sequence length; needs no data."""
    from linctl.atomic import check_writable_file
    from linctl.bench.options import BenchOptions
    from linctl.bench.report import plot as plot_report
    from linctl.bench.report import table, write_csv, write_json
    from linctl.bench.run import Row, run_bench

    options = build_options(ctx, BenchOptions)
    for name, path in (("--json", json), ("--csv", csv), ("--plot", plot)):
        if path is not None:
            check_writable_file(path, name)

    def progress(row: Row) -> None:
        took = "" if row.median_s is None else f" {row.median_s * 1e3:,.1f} ms"
        note(f"{row.label} n={row.n:,} batch={row.batch}: {row.status}{took}", style="dim")

    report = run_bench(options, progress)
    for said in report.notes:
        note(f"note: {said}", style="yellow")
    # Piped or captured output has no width of its own: give the table room instead of cutting headers.
    wide = stdout if stdout.is_terminal else Console(width=240)
    wide.print(table(report, options.paper))
    if json is not None:
        write_json(report, json)
    if csv is not None:
        write_csv(report, csv)
    if plot is not None:
        plot_report(report, plot)
