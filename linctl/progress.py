"""What a command says while it works: progress bars, notes and warnings, all on stderr.

stdout holds only a command's results (its summary table, its report), so that they can be piped or
captured on their own.
"""

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

console = Console(stderr=True)


def bars_off() -> bool:
    """Return True when LINCTL_PROGRESS=0 turns progress bars off (CI logs, tests)."""
    return os.environ.get("LINCTL_PROGRESS", "1") == "0"


@contextlib.contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[[float], None]]:
    """Show a bar for ``total`` units of work; yield a function that advances it."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=bars_off(), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda amount=1: bar.advance(task, amount)


def note(message: str, style: str = "") -> None:
    """Print a note about the work, not its result (a stage begun, a run resumed), on stderr."""
    console.print(message, style=style, markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print a warning on stderr."""
    console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
