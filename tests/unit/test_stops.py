"""A Ctrl-C or SIGTERM ends a run as a stop even when code between swallows it or makes it another error."""

import contextlib
import signal

import pytest

import linctl.cli.app
from linctl.cli import start

KEPT = "finished output files are kept; run the same command again to resume"


@pytest.fixture
def handlers():
    kept = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in kept.items():
        signal.signal(signum, handler)


def swallows_sigterm() -> None:
    with contextlib.suppress(BaseException):  # as numpy.random's Cython module init did, in an import
        signal.raise_signal(signal.SIGTERM)


def turns_ctrl_c_into_another_error() -> None:
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt as exc:  # as type.__new__ does for an exception from __set_name__
        raise RuntimeError("Error calling __set_name__") from exc


@pytest.mark.parametrize(("body", "line", "code"), [
    (swallows_sigterm, f"terminated: {KEPT}", 143),
    (turns_ctrl_c_into_another_error, f"interrupted: {KEPT}", 130),
])  # fmt: skip
def test_a_stop_that_code_between_hid_still_ends_the_run(body, line, code, handlers, monkeypatch, capsys):
    monkeypatch.setattr(linctl.cli.app, "main", body)
    with pytest.raises(SystemExit) as ended:
        start.main()
    assert (ended.value.code, capsys.readouterr().err) == (code, f"{line}\n")
    assert start.unreported_stop() is None


def test_a_run_without_a_stop_ends_as_it_would(handlers, monkeypatch, capsys):
    monkeypatch.setattr(linctl.cli.app, "main", lambda: None)
    start.main()
    assert capsys.readouterr().err == ""
