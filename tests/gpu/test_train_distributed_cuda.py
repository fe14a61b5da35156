"""`linctl train --nproc` on CUDA (nccl): the sanity runs for a lent GPU machine (`pytest -m gpu tests/gpu`).

One GPU alone and a torchrun job of one process on it follow one curve; FSDP with bf16 compute follows
it within bf16's rounding; with two GPUs, two processes follow one process with the same global batch."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

# Dropout off and two micro-batches a step: the curve does not depend on how processes share them.
EXACT = [
    "--device", "cuda", "--set", "model.dropout=0.0", "--set", "model.attention.dropout=0.0",
    "--set", "train.accumulate=2", "--set", "train.log_every=1",
]  # fmt: skip


def train(tiny_args, model_dir: Path, *extra: str) -> Path:
    """Run the tiny `linctl train` into ``model_dir`` in a child process; return the folder."""
    env = {**os.environ, "LINCTL_PROGRESS": "0"}
    command = [sys.executable, "-m", "linctl", "train", *map(str, tiny_args(model_dir)), *EXACT, *extra]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return model_dir


@pytest.fixture(scope="module")
def alone(tiny_args, tmp_path_factory) -> Path:
    """The tiny run on one GPU, without torchrun."""
    return train(tiny_args, tmp_path_factory.mktemp("alone") / "model")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_a_torchrun_job_of_one_process_follows_the_gpu_alone(
    alone, tiny_args, tmp_path, strategy, largest_difference
):
    job = train(tiny_args, tmp_path / "model", "--nproc", "1",
                "--set", f"train.strategy={strategy}")  # fmt: skip
    assert largest_difference(job, alone) <= 1e-5


def test_fsdp_in_bf16_follows_fp32_within_bf16_rounding(alone, tiny_args, tmp_path, curve):
    job = train(tiny_args, tmp_path / "model", "--nproc", "1",
                "--set", "train.strategy=fsdp", "--set", "train.precision=bf16")  # fmt: skip
    ours, theirs = curve(job), curve(alone)
    assert all(math.isfinite(value) for value in ours.values())
    losses = [key for key in theirs if key[1].endswith("loss")]
    assert max(abs(ours[key] - theirs[key]) for key in losses) <= 5e-2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_gpus_follow_one(alone, tiny_args, tmp_path, strategy, largest_difference):
    job = train(tiny_args, tmp_path / "model", "--nproc", "2",
                "--set", f"train.strategy={strategy}")  # fmt: skip
    assert largest_difference(job, alone) <= 1e-4
