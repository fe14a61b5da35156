"""Progress bars for long library operations, drawn on stderr so that stdout stays clean."""

import contextlib
import os
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


@contextlib.contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[[float], None]]:
    """Show a bar for ``total`` units of work; yield a function that advances it.

    LINCTL_PROGRESS=0 turns bars off (CI logs, tests).
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    disable = os.environ.get("LINCTL_PROGRESS", "1") == "0"
    with Progress(*columns, console=_console, disable=disable, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda amount=1: bar.advance(task, amount)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    _console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
