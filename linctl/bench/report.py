"""Present a benchmark report: a rich table, JSON, CSV and a log-log plot of time and memory against n."""

import csv
import io
import json
from pathlib import Path

from rich.table import Table

from linctl.atomic import atomic_path, write_text_atomic
from linctl.bench.run import Report, Row

SCHEMA_VERSION = 1
CSV_FIELDS = list(Row.model_fields)


def _x(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}×"


def _mib(value: int | None) -> str:
    return "" if value is None else f"{value / 2**20:,.1f}"


def table(report: Report, paper: bool) -> Table:
    """Return the rich table of ``report``; ``paper`` adds the eager baseline and the paper's figures."""
    m = report.machine
    rate = m["matmul_flops_per_s"]
    title = (
        f"{m['device']} · {m['threads']} threads · {m['dtype']} · torch {m['torch']} · "
        f"matmul {rate / 1e9:,.1f} GFLOP/s"
        if rate
        else f"{m['device']} · matmul rate not measured"
    )
    t = Table(title=title, title_justify="left")
    first = "model" if len(report.options.get("config") or []) > 1 else "attention"  # what the rows vary
    columns = [first, "n", "batch", "ms", "±", "tokens/s", "GFLOP/s", "of matmul", "peak MiB"]
    train = report.options["mode"] == "train"
    columns += ["s / 1k steps"] if train else []
    columns += ["speed-up", "mem saving", "FLOP ratio"]
    if paper:
        columns += ["vs eager", "paper speed-up", "paper mem"]
    if any(r.vs_peer is not None for r in report.rows):
        columns.append("vs peer")
    for name in columns:
        t.add_column(name, justify="left" if name == first else "right")
    for r in report.rows:
        if r.status != "ok":
            cells = [r.label, f"{r.n:,}", str(r.batch or ""), r.status, r.message[:60]]
            t.add_row(*cells, *[""] * (len(columns) - len(cells)), style="dim")
            continue
        cells = [
            r.label, f"{r.n:,}", f"{r.batch:,}", f"{r.median_s * 1e3:,.1f}", f"{r.spread:.0%}",  # type: ignore[operator]
            f"{r.tokens_per_s:,.0f}", f"{(r.flops_per_s or 0) / 1e9:,.1f}",
            "" if r.matmul_fraction is None else f"{r.matmul_fraction:.0%}", _mib(r.peak_bytes),
        ]  # fmt: skip
        cells += [f"{r.s_per_1k_steps:,.1f}"] if train else []
        speedup = _x(r.speedup) + ("" if r.speedup_spread is None else f" ±{r.speedup_spread:.2f}")
        cells += [speedup, _x(r.memory_saving, 1), _x(r.flop_ratio)]
        if paper:
            cells += [_x(r.speedup_eager), _x(r.paper_speedup, 1), _x(r.paper_memory_saving, 1)]
        if "vs peer" in columns:
            cells.append(_x(r.vs_peer))
        t.add_row(*cells)
    return t


def to_json(report: Report) -> str:
    # `schema` is where bench reports kept their version before every linctl report had `schema_version`.
    version = {"schema_version": SCHEMA_VERSION, "schema": SCHEMA_VERSION}
    return json.dumps({**version, **report.model_dump(mode="json")}, indent=2) + "\n"


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({key: "" if value is None else value for key, value in row.model_dump().items()})
    return out.getvalue()


def write_json(report: Report, path: Path) -> None:
    write_text_atomic(path, to_json(report))


def write_csv(report: Report, path: Path) -> None:
    write_text_atomic(path, to_csv(report))


def plot(report: Report, path: Path) -> None:
    """Plot time per repeat and peak memory against n, log-log, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = dict.fromkeys(r.label for r in report.rows)
    for label in labels:
        rows = sorted((r for r in report.rows if r.label == label and r.status == "ok"), key=lambda r: r.n)
        if not rows:
            continue
        ns = [r.n for r in rows]
        ax_time.plot(ns, [r.median_s * 1e3 / r.batch for r in rows], marker="o", label=label)  # type: ignore[operator]
        ax_mem.plot(ns, [(r.peak_bytes or 0) / 2**20 / r.batch for r in rows], marker="o", label=label)
    m = report.machine
    for ax, what in ((ax_time, "time per sequence (ms)"), (ax_mem, "peak working memory per sequence (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend(fontsize=7)
    fig.suptitle(
        f"{report.options['level']} {report.options['mode']}, {m['dtype']}, {m['device']}", fontsize=9
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
