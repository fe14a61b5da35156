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


_raised: list[int] = []  # stops the handlers raised that no report has said yet


def stop_on_signals() -> None:
    """Make SIGTERM raise :class:`Terminated` and Ctrl-C KeyboardInterrupt in the main thread, each
    remembered until :func:`stopped` reports it: code between may swallow the exception (a C extension's
    module init) or turn it into another (a class's ``__set_name__``), and the run must still end as a stop.
    """

    def stop(signum: int, frame: object) -> None:
        _raised.append(signum)
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # an ignored Ctrl-C stays ignored
        signal.signal(signal.SIGINT, stop)


def stopped(exc: KeyboardInterrupt) -> tuple[str, int]:
    """Return the line that reports a run stopped by ``exc``, and the exit code."""
    _raised.clear()
    if isinstance(exc, Terminated):
        return f"terminated: {KEPT}", EXIT_TERMINATED
    return f"interrupted: {KEPT}", EXIT_INTERRUPTED


def unreported_stop() -> tuple[str, int] | None:
    """Return the line and exit code of a stop that was raised but never reported, or None."""
    if not _raised:
        return None
    return stopped(Terminated() if _raised[0] == signal.SIGTERM else KeyboardInterrupt())


def main() -> None:
    """Entry point of the `linctl` console script and of `python -m linctl`."""
    stop_on_signals()
    try:
        from linctl.cli.app import main as run_app

        run_app()
    except KeyboardInterrupt as exc:  # while the app loaded or parsed; a command's own are reported in it
        line, code = stopped(exc)
    except BaseException:  # typer's SystemExit among them
        if (stop := unreported_stop()) is None:
            raise
        line, code = stop
    else:
        if (stop := unreported_stop()) is None:
            return
        line, code = stop
    sys.stderr.write(f"{line}\n")
    sys.exit(code)
