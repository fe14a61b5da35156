"""`linctl report`: one Markdown page of the results of training runs and benchmarks, with plots."""

from pathlib import Path
from typing import Annotated

import typer

from linctl.cli.options import print_summary


def report(
    runs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUNS",
            help="`linctl train` model folders (their config, metrics log and `linctl eval` JSON) and "
            "`linctl bench --json` files.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            help="The report to write: Markdown, or HTML when the name ends in .html; its plots go into the "
            "folder OUTPUT-STEM-plots beside it."
        ),
    ] = Path("report.md"),
) -> None:
    """Report runs: tables of eval metrics with the protocol of each number, mean ± std over seeds,
    published figures beside comparable runs, training curves and benchmark plots."""
    from linctl.atomic import check_writable_file
    from linctl.report.document import write_report

    check_writable_file(output, "--output")
    written = write_report(runs, output)
    print_summary(
        f"report → {written.path}",
        {
            "training runs": written.train_runs,
            "bench reports": written.bench_reports,
            "seed groups": written.seed_groups,
            "published comparisons": written.comparisons,
            "plots": len(written.plots),
        },
    )
