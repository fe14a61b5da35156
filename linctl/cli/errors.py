"""The one place that turns failures into what the user sees: a one-line message and an exit code."""

import difflib
import errno
import os
import sys
import traceback
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NoReturn

import typer
from typer._click.exceptions import NoSuchOption, UsageError
from typer.core import TyperGroup

from linctl.cli.start import KEPT, stopped, unreported_stop
from linctl.errors import LinctlError, RankFailed

EXIT_EXPECTED = 2  # bad input, config or output folder: the message says what to fix
EXIT_BUG = 1  # anything else: a bug in linctl, or a worker process killed from outside
# Errors of a write to standard output that are the destination's, not linctl's: closed pipe, full disk.
WRITE_ERRORS = frozenset({errno.EPIPE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def debugging() -> bool:
    """Return True when LINCTL_DEBUG asks for tracebacks."""
    return os.environ.get("LINCTL_DEBUG", "") not in ("", "0")


class LinctlGroup(TyperGroup):
    """The root group: LinctlError exits 2, any other exception 1, both without a traceback."""

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except UsageError:
            if not args or self.get_command(ctx, args[0]) is not None:
                raise
            where = f" in {command_name(ctx)}" if ctx.parent is not None else ""
            commands = ", ".join(self.list_commands(ctx))
            refuse(f"no command {args[0]!r}{where}; commands: {commands}")

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as exc:
            refuse_option(ctx, exc)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except LinctlError as exc:
            _report(f"error: {exc}")
            raise typer.Exit(EXIT_EXPECTED) from None
        except KeyboardInterrupt as exc:
            line, code = stopped(exc)
            _report(line)
            raise typer.Exit(code) from None
        except RankFailed as exc:
            if str(exc):  # else the process that failed said why
                _report(f"error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except BrokenProcessPool:
            _report(
                f"error: a worker process of this run died (killed from outside, or out of memory); {KEPT}"
            )
            raise typer.Exit(EXIT_BUG) from None
        except Exception as exc:
            if type(exc).__module__.startswith("typer"):  # typer's (vendored click's) own exit and usage flow
                raise
            if (stop := unreported_stop()) is not None:  # code between turned the stop into this error
                _report(stop[0])
                raise typer.Exit(stop[1]) from None
            if isinstance(exc, OSError) and _stdout_failed(exc):
                raise  # main() reports it in one line
            _report(f"internal error: {type(exc).__name__}: {exc} (LINCTL_DEBUG=1 shows the traceback)")
            raise typer.Exit(EXIT_BUG) from None


def command_name(ctx: typer.Context) -> str:
    """Return the command as users type it after the program's name (``prepare vocab``), or ``linctl``."""
    names = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names)) or "linctl"


def refuse_option(ctx: typer.Context, exc: NoSuchOption) -> NoReturn:
    """Refuse an unknown option in one line: the closest valid name, or all of them."""
    options = sorted(
        {
            name
            for param in ctx.command.get_params(ctx)
            if not getattr(param, "hidden", False)
            for name in (*param.opts, *param.secondary_opts)
            if name.startswith("--")
        }
    )
    close = difflib.get_close_matches(exc.option_name, options, n=1)
    hint = f"did you mean {close[0]}?" if close else f"options: {', '.join(options)}"
    refuse(f"{command_name(ctx)} has no option {exc.option_name}; {hint}")


def refuse(message: str) -> NoReturn:
    """Print ``error: message`` (a command-line mistake) and exit 2, as click does for usage errors."""
    _report(f"error: {message}")
    raise typer.Exit(EXIT_EXPECTED)


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
