"""Write the report: Markdown tables of every run's metrics with the protocol behind each number, the spread
over seeds, published figures beside comparable runs, training curves and benchmark plots."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from linctl import __version__
from linctl.atomic import write_text_atomic
from linctl.bench.report import plot as bench_plot
from linctl.report.plots import training_curves
from linctl.report.published import Published, published
from linctl.report.runs import BenchRun, Evaluation, TrainRun, read_runs
from linctl.report.seeds import Spread, seed_groups, spreads

HTML_SUFFIXES = (".html", ".htm")
TABLE_3 = "Linformer (Wang et al. 2020) Table 3, as `linctl bench` records it per row"


@dataclass
class Written:
    """What a report holds: its file, its plots and what it was made from."""

    path: Path
    plots: list[Path] = field(default_factory=list)
    train_runs: int = 0
    bench_reports: int = 0
    seed_groups: int = 0
    comparisons: int = 0


def write_report(paths: list[Path], output: Path) -> Written:
    """Read the runs at ``paths`` and write their report to ``output`` (Markdown; HTML when its name ends in
    .html), its plots into the folder ``<output stem>-plots`` beside it; each file is written atomically,
    the report last."""
    runs = read_runs(paths)
    train = [run for run in runs if isinstance(run, TrainRun)]
    bench = [run for run in runs if isinstance(run, BenchRun)]
    written = Written(output, train_runs=len(train), bench_reports=len(bench))
    plots = output.with_name(f"{output.stem}-plots")
    lines = ["# linctl report", "", f"linctl {__version__}; runs: {', '.join(f'`{p}`' for p in paths)}."]
    if train:
        lines += _evaluations(train)
        groups = seed_groups(train)
        written.seed_groups = len(groups)
        lines += _seeds(groups)
        comparisons = _comparisons(train)
        written.comparisons = sum(len(rows) for _, rows in comparisons)
        if comparisons:
            lines += _published(comparisons)
        lines += ["", "## Training curves"]
        for task in dict.fromkeys(run.task for run in train):
            png = plots / f"curves-{task}.png"
            training_curves([run for run in train if run.task == task], png)
            written.plots.append(png)
            lines += ["", f"![{task}: training and evaluation loss]({png.relative_to(output.parent)})"]
    for index, run in enumerate(bench):
        png = plots / f"bench-{index}-{run.path.stem}.png"
        bench_plot(run.report, png)
        written.plots.append(png)
        lines += _bench(run, png.relative_to(output.parent))
    text = "\n".join(lines) + "\n"
    write_text_atomic(output, _html(text) if output.suffix.lower() in HTML_SUFFIXES else text)
    return written


def _html(markdown: str) -> str:
    """Return ``markdown`` as a standalone HTML page (CommonMark with tables; raw HTML is escaped)."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = "body{font-family:sans-serif;max-width:75em;margin:auto}table{border-collapse:collapse}"
    style += "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>linctl report</title>'
        f"<style>{style}</style></head>\n<body>\n{body}</body>\n</html>\n"
    )


def _evaluations(runs: list[TrainRun]) -> list[str]:
    lines = ["", "## Evaluations", ""]
    lines.append("Every `linctl eval` result of each run; the protocol of each number follows the tables.")
    for task in dict.fromkeys(run.task for run in runs):
        ours = [(run, e) for run in runs if run.task == task for e in run.evaluations]
        names = list(dict.fromkeys(name for _, e in ours for name in e.metrics))
        lines += ["", f"### Task {task}", ""]
        if not ours:
            lines.append("No run of this task has been evaluated (`linctl eval`).")
            continue
        lines.append("| run | evaluation | step | " + " | ".join(names) + " |")
        lines.append("|---|---|---:|" + "---:|" * len(names))
        for run, e in ours:
            cells = [_number(e.metrics.get(name)) for name in names]
            lines.append(f"| `{run.path}` | {e.name} | {e.result['step']:,} | " + " | ".join(cells) + " |")
    lines += ["", "### Protocol", ""]
    for run in runs:
        lines += _protocol(run)
    return lines


def _protocol(run: TrainRun) -> list[str]:
    """The run's data, seed and budget from its config.yaml, then each evaluation's data and method."""
    train, task = run.config["train"], run.config["task"]
    budget = f"{train['steps']:,} steps of batch {train['batch_size']}"
    budget += f" × {train['accumulate']} micro-batches" if train.get("accumulate", 1) > 1 else ""
    start = train.get("init_checkpoint") or "random initialisation"
    lines = [
        f"- `{run.path}`: task {task['kind']}, trained on `{task.get('train_dir')}`, seed {train['seed']}, "
        f"{budget}, precision {train['precision']}, from {start}; model {_model(run.config['model'])}."
    ]
    for e in run.evaluations:
        scored = e.result.get("task_config", {}).get("eval_dir")
        trained = task.get("eval_dir")
        data = f"`{scored}`" if scored else f"data this result does not record (training scored `{trained}`)"
        how = f"; {e.result['protocol']}" if e.result.get("protocol") else ""
        lines.append(f"  - {e.name} (`{e.path}`): step {e.result['step']:,}, scored on {data}{how}.")
    return lines


def _model(model: dict[str, Any]) -> str:
    """Name the model: its family, sizes, attention and the layers whose attention differs."""
    sizes = ", ".join(f"{key} {model[key]}" for key in ("n_layers", "d_model", "n_heads") if key in model)
    layers = "".join(f"; layer {i}: {_attention(spec)}" for i, spec in model.get("layers", {}).items())
    return f"{model['kind']} ({sizes}; attention {_attention(model.get('attention', {}))}{layers})"


def _attention(spec: dict[str, Any]) -> str:
    details = ", ".join(f"{key} {value}" for key, value in spec.items() if key not in ("kind", "dropout"))
    return f"{spec.get('kind')} ({details})"


def _seeds(groups: list[list[TrainRun]]) -> list[str]:
    if not groups:
        return []
    lines = ["", "## Seeds", ""]
    lines.append(
        "Runs of one config that differ only in `train.seed`: mean ± sample standard deviation (n − 1) over "
        "the seeds, and n."
    )
    for group in groups:
        found = spreads(group)
        seeds = ", ".join(str(seed) for seed in found[0].seeds) if found else ""
        lines += ["", f"Runs {', '.join(f'`{run.path}`' for run in group)} (seeds {seeds}):", ""]
        if not found:
            lines.append("No evaluation that every one of these runs has.")
            continue
        lines += ["| evaluation | metric | mean ± std | n |", "|---|---|---:|---:|"]
        lines += [_spread_row(spread) for spread in found]
    return lines


def _spread_row(spread: Spread) -> str:
    shown = f"{_number(spread.mean)} ± {_number(spread.std)}"
    return f"| {spread.evaluation} | {spread.metric} | {shown} | {len(spread.values)} |"


Comparison = tuple[Published, list[tuple[TrainRun, Evaluation]]]  # a figure and the results beside it


def _comparisons(runs: list[TrainRun]) -> list[Comparison]:
    """Return each published figure that some evaluation of ``runs`` is comparable with, and those results."""
    found = []
    for figure in published():
        rows = [
            (run, e)
            for run in runs
            if figure.comparable(run)
            for e in run.evaluations
            if figure.scored_alike(e)
        ]
        if rows:
            found.append((figure, rows))
    return found


def _published(comparisons: list[Comparison]) -> list[str]:
    """One table per published figure: the figure with its setting and source, then each comparable result,
    and how far it is from the figure."""
    lines = ["", "## Published figures beside ours", ""]
    lines.append(
        "Each table is one published figure and the results comparable with it (same task and attention; for "
        "GLUE, the same task and split). Ours are at the scale and protocol stated above, not the paper's."
    )
    for figure, rows in comparisons:
        lines += ["", f"### {figure.metric} {figure.figure:g}: {figure.model}", ""]
        lines += [f"{figure.setting}. Source: {figure.source}.", ""]
        lines += [
            f"| run | evaluation | {figure.metric} | ours − published | relative |",
            "|---|---|---:|---:|---:|",
        ]
        for run, e in rows:
            ours = e.metrics[figure.metric]
            difference = ours - figure.figure
            cells = [
                f"`{run.path}`",
                e.name,
                _number(ours),
                f"{difference:+.4f}",
                f"{difference / figure.figure:+.1%}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _bench(run: BenchRun, png: Path) -> list[str]:
    report, opts = run.report, run.report.options
    m = report.machine
    lines = ["", f"## Benchmark `{run.path}`", ""]
    lines.append(
        f"{opts.get('level')} level, {opts.get('mode')} mode, {m.get('dtype')}, {opts.get('warmup')} warm-up "
        f"and {opts.get('repeats')} timed repeats per case (median), seed "
        f"{opts.get('seed')}; {m.get('device')}, {m.get('threads')} threads, torch {m.get('torch')}."
    )
    paper = any(r.paper_speedup is not None for r in report.rows)
    train = any(r.s_per_1k_steps is not None for r in report.rows)
    columns = ["variant", "n", "batch", "ms", "tokens/s", "peak MiB"]
    columns += ["s / 1k steps"] if train else []
    columns += ["speed-up", "memory saving"]
    columns += ["paper speed-up", "paper memory saving"] if paper else []
    lines += ["", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    for r in report.rows:
        if r.status != "ok":
            cells = [r.label, f"{r.n:,}", str(r.batch), f"{r.status}: {r.message}"]
            lines.append("| " + " | ".join(cells + [""] * (len(columns) - len(cells))) + " |")
            continue
        ms = _shown(r.median_s and r.median_s * 1e3, ".4f")
        mib = _shown(r.peak_bytes and r.peak_bytes / 2**20, ",.1f")
        cells = [r.label, f"{r.n:,}", f"{r.batch:,}", ms, _shown(r.tokens_per_s, ",.0f"), mib]
        cells += [_shown(r.s_per_1k_steps, ",.1f")] if train else []
        ratios = [r.speedup, r.memory_saving] + ([r.paper_speedup, r.paper_memory_saving] if paper else [])
        cells += [_shown(ratio, ".2f", "×") for ratio in ratios]
        lines.append("| " + " | ".join(cells) + " |")
    for note in report.notes:
        lines.append(f"\nNote: {note}")
    if paper:
        lines += ["", f"Paper figures: {TABLE_3}."]
    lines += ["", f"![{run.path.name}: time and memory against n]({png})"]
    return lines


def _number(value: float | None) -> str:
    """A metric as the tables show it: four decimals."""
    return _shown(value, ".4f")


def _shown(value: float | None, spec: str, unit: str = "") -> str:
    return "" if value is None else f"{value:{spec}}{unit}"
