"""Wiring of the `linctl` command: sub-commands live in their own modules."""

from typing import Annotated

import typer

from linctl import __version__
from linctl.cli.bench import bench
from linctl.cli.command import LinctlCommand
from linctl.cli.compile import compile_model
from linctl.cli.errors import LinctlGroup
from linctl.cli.evaluate import evaluate
from linctl.cli.prepare import prepare_app
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
app.command("compile", cls=LinctlCommand)(compile_model)


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
    """Entry point of the `linctl` console script."""
    app()
