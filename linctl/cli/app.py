"""Wiring of the `linctl` command: sub-commands live in their own modules."""

import errno
import os
import sys
from typing import Annotated

import typer

from linctl import __version__
from linctl.cli.bench import bench
from linctl.cli.command import LinctlCommand
from linctl.cli.compile import compile_model
from linctl.cli.download import download
from linctl.cli.errors import EXIT_EXPECTED, WRITE_ERRORS, LinctlGroup
from linctl.cli.evaluate import evaluate
from linctl.cli.prepare import prepare_app
from linctl.cli.report import report
from linctl.cli.train import train
from linctl.cli.validate import validate

app = typer.Typer(
    name="linctl",
    cls=LinctlGroup,
    help="Efficient-attention Transformers from raw text to published numbers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(prepare_app, name="prepare")
app.command("train", cls=LinctlCommand)(train)
app.command("validate", cls=LinctlCommand)(validate)
app.command("eval", cls=LinctlCommand)(evaluate)
app.command("bench", cls=LinctlCommand)(bench)
app.command("report", cls=LinctlCommand)(report)
app.command("compile", cls=LinctlCommand)(compile_model)
app.command("download", cls=LinctlCommand)(download)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"linctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Efficient-attention Transformers from raw text to published numbers."""


def main() -> None:
    """Run the app; a write error of standard output (full disk, closed pipe) ends it in one line.

    The console script enters through linctl.cli.start, which handles Ctrl-C and SIGTERM from the start.
    """
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # a full disk shows here when the output was buffered
    except OSError as exc:
        if exc.errno not in WRITE_ERRORS:
            raise
        # Point stdout at /dev/null so that Python's own flush at exit does not fail (and print) again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if exc.errno != errno.EPIPE:  # a reader that closed the pipe (| head) wants no message
            typer.echo(f"error: cannot write to standard output: {exc.strerror}", err=True)
        sys.exit(EXIT_EXPECTED)
