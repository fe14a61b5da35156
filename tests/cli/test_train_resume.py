"""`kill -9` during `linctl train`, then `linctl train` again: the run resumes and ends where an
uninterrupted run ends, bitwise (CPU, deterministic mode)."""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# Runs `linctl ARGS…` in a child that kills itself with SIGKILL when it is about to write (``during``)
# or has just renamed into place (``after``) the checkpoint of step KILL_STEP.
KILLER = """
import os, signal, sys
import linctl.train.checkpoint as ckpt
from linctl.cli.app import app

step, when = int(sys.argv[1]), sys.argv[2]
target = f"checkpoint-{step:08d}"
save_model, checkpoints = ckpt.save_model, ckpt.checkpoints

def killing_save_model(model, path):
    save_model(model, path)
    if when == "during" and target in path:
        os.kill(os.getpid(), signal.SIGKILL)

def killing_checkpoints(model_dir):
    found = checkpoints(model_dir)
    if when == "after" and any(p.name == target for p in found):
        os.kill(os.getpid(), signal.SIGKILL)
    return found

ckpt.save_model, ckpt.checkpoints = killing_save_model, killing_checkpoints
sys.argv = ["linctl", *sys.argv[3:]]
app()
"""

DETERMINISTIC = ["--set", "train.deterministic=true", "--set", "model.dropout=0.1"]


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    newest = sorted(model_dir.glob("checkpoint-*"))[-1]
    return load_file(newest / "model.safetensors")


def metrics(model_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in records]  # wall time differs


@pytest.fixture(scope="module")
def reference(cli, tiny_args, tmp_path_factory) -> Path:
    """An uninterrupted 12-step run, trained once for the module: tests read it, or train on a copy."""
    model_dir = tmp_path_factory.mktemp("reference") / "model"
    cli("train", *tiny_args(model_dir), *DETERMINISTIC)
    return model_dir


@pytest.fixture
def finished(reference, tmp_path) -> Path:
    """A copy of the reference run in the model folder of ``tiny_run``."""
    return Path(shutil.copytree(reference, tmp_path / "model"))


@pytest.mark.parametrize("when", ["during", "after"])
def test_killed_run_resumes_to_the_same_weights_and_metrics(cli, tiny_args, tmp_path, reference, when):
    model_dir = tmp_path / f"killed-{when}"
    args = [*tiny_args(model_dir), *DETERMINISTIC]
    child = subprocess.run(
        [sys.executable, "-c", KILLER, "8", when, "train", *map(str, args)], capture_output=True, text=True
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    left = sorted(p.name for p in model_dir.glob("checkpoint-*"))
    if when == "during":  # the step-8 folder exists only under its temporary name
        assert "checkpoint-00000008" not in left and any(
            name.startswith("checkpoint-00000008.tmp-") for name in left
        )
    else:
        assert "checkpoint-00000008" in left
    assert max(r["step"] for r in metrics(model_dir)) == 8

    result = cli("train", *args)
    resumed = 4 if when == "during" else 8
    assert f"resumed from step {resumed}" in result.stderr  # a note: stdout holds the summary alone
    assert not any(".tmp-" in p.name for p in model_dir.iterdir())
    ours, theirs = weights(model_dir), weights(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name
    assert metrics(model_dir) == metrics(reference)


def test_finished_run_is_not_trained_again(cli, tiny_run, finished):
    before = weights(finished)
    cli("train", *tiny_run)
    after = weights(finished)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert sorted(p.name for p in finished.glob("checkpoint-*")) == [
        "checkpoint-00000004", "checkpoint-00000008", "checkpoint-00000012"
    ]  # fmt: skip


def test_longer_run_continues_from_the_finished_one(cli, tiny_run, finished):
    result = cli("train", *tiny_run, "--set", "train.steps=16")
    assert "resumed from step 12" in result.stderr
    assert (finished / "checkpoint-00000016" / "model.safetensors").is_file()
