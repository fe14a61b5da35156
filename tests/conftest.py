"""Shared fixtures: seeded, two threads, no network, real data from LINCTL_DATA (default ../shared/data)."""

import os
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from linctl.cli.app import app

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LINCTL_DATA", REPO.parent / "shared" / "data")).resolve()

os.environ["LINCTL_PROGRESS"] = "0"
torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seeded_and_offline(monkeypatch):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)

    def refuse(*args, **kwargs):
        raise OSError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real datasets (see ../shared/data/README.md)."""
    if not DATA.is_dir():
        pytest.fail(f"datasets not found at {DATA}: set LINCTL_DATA to the shared/data folder")
    return DATA


class Cli:
    """Runs `linctl ARGS…` in-process and returns click's Result (exit_code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: object, ok: bool = True):
        result = self.runner.invoke(app, [str(a) for a in args])
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"linctl {' '.join(map(str, args))} exited {result.exit_code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{result.exception!r}"
            )
        return result


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()
