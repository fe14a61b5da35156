"""The `linctl` command's first module: Ctrl-C and SIGTERM end a run in one line from its first instruction.

It imports nothing but the standard library's ``signal`` and ``sys``; the app (typer, rich, torch for
some commands) loads inside :func:`main`, so a signal that comes while those load is reported as one that
comes during a command: ``interrupted: …`` and exit 130, or ``terminated: …`` and exit 143, no traceback.
"""

import signal
import sys

EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # the shell's codes: 130, 143
KEPT = "finished output files are kept; run the same command again to resume"


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a scheduler stopping a job): the run stops as a Ctrl-C stops it."""


def stop_on_sigterm() -> None:
    """Make SIGTERM raise :class:`Terminated` in the main thread, so that it ends a run like Ctrl-C."""

    def terminate(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, terminate)


def stopped(exc: KeyboardInterrupt) -> tuple[str, int]:
    """Return the line that reports a run stopped by ``exc``, and the exit code."""
    if isinstance(exc, Terminated):
        return f"terminated: {KEPT}", EXIT_TERMINATED
    return f"interrupted: {KEPT}", EXIT_INTERRUPTED


def main() -> None:
    """Entry point of the `linctl` console script and of `python -m linctl`."""
    stop_on_sigterm()
    try:
        from linctl.cli.app import main as run_app

        run_app()
    except KeyboardInterrupt as exc:  # while the app loaded or parsed; a command's own are reported in it
        line, code = stopped(exc)
        sys.stderr.write(f"{line}\n")
        sys.exit(code)
