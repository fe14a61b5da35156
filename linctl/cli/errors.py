"""The one place that turns failures into what the user sees: a one-line message and an exit code."""

import errno
import os
import sys
import traceback

import typer
from typer.core import TyperGroup

from linctl.errors import LinctlError

EXIT_EXPECTED = 2  # bad input, config or output folder: the message says what to fix
EXIT_BUG = 1  # anything else: a bug in linctl
# Errors of a write to standard output that are the destination's, not linctl's: closed pipe, full disk.
WRITE_ERRORS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def debugging() -> bool:
    """Return True when LINCTL_DEBUG asks for tracebacks."""
    return os.environ.get("LINCTL_DEBUG", "") not in ("", "0")


class LinctlGroup(TyperGroup):
    """The root group: LinctlError exits 2, any other exception 1, both without a traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except LinctlError as exc:
            _report(f"error: {exc}")
            raise typer.Exit(EXIT_EXPECTED) from None
        except KeyboardInterrupt:
            _report("interrupted: finished output files are kept; run the same command again to resume")
            raise typer.Exit(130) from None
        except Exception as exc:
            if type(exc).__module__.startswith("typer"):  # typer's (vendored click's) own exit and usage flow
                raise
            if isinstance(exc, OSError) and _stdout_failed(exc):
                raise  # main() reports it in one line
            _report(f"internal error: {type(exc).__name__}: {exc} (LINCTL_DEBUG=1 shows the traceback)")
            raise typer.Exit(EXIT_BUG) from None


def _report(message: str) -> None:
    if debugging():
        traceback.print_exc()
    typer.echo(message, err=True)


def _stdout_failed(exc: OSError) -> bool:
    """Return True when ``exc`` came from writing to standard output: a closed pipe, or a destination that
    refuses even an empty write (/dev/full)."""
    if exc.errno == errno.EPIPE:
        return True
    if exc.errno not in WRITE_ERRORS:
        return False
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # stdout is not a file (a test's capture): no way to tell
        return False
    try:
        os.write(fd, b"")
    except OSError:
        return True
    return False
