"""`linctl train` under torchrun: 2 CPU processes (gloo) train as one process does with the same global
batch, write checkpoints together, resume, and fail as one job when a process dies."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

# Dropout off: the processes draw their own dropout masks, so that only with none is the loss curve one
# process's. Two micro-batches a step, one per process.
EXACT = [
    "--set", "model.dropout=0.0", "--set", "model.attention.dropout=0.0",
    "--set", "train.accumulate=2", "--set", "train.log_every=1",
]  # fmt: skip


def linctl(*args: object, nproc: int | None = None, strategy: str = "ddp") -> subprocess.CompletedProcess:
    """Run `linctl train ARGS` in a child process (with ``--nproc``: a torchrun job), one thread each."""
    extra = ["--nproc", str(nproc), "--set", f"train.strategy={strategy}"] if nproc else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LINCTL_PROGRESS": "0"}
    command = [sys.executable, "-m", "linctl", "train", *map(str, args), *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def trained(*args: object, **kwargs: object) -> subprocess.CompletedProcess:
    done = linctl(*args, **kwargs)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def one_process(tiny_args, tmp_path_factory) -> Path:
    """The tiny run in one process, two micro-batches of 3 a step: the curve the jobs must follow."""
    model_dir = tmp_path_factory.mktemp("one") / "model"
    trained(*tiny_args(model_dir), *EXACT)
    return model_dir


@pytest.mark.slow
def test_ddp_on_two_processes_follows_one_process(
    tiny_args, tmp_path, one_process, largest_difference, curve
):
    model_dir = tmp_path / "model"
    done = trained(*tiny_args(model_dir), *EXACT, nproc=2)
    assert largest_difference(model_dir, one_process) <= 1e-5
    # rank 0 alone logs and reports: every step once, one summary
    steps = [step for step, key in curve(model_dir) if key == "train_loss"]
    assert steps == list(range(1, 13))
    assert done.stdout.count("train → ") == 1
    ours = load_file(model_dir / "checkpoint-00000012" / "model.safetensors")
    theirs = load_file(one_process / "checkpoint-00000012" / "model.safetensors")
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=1e-5)


def interrupted_after_step_8(model_dir: Path) -> None:
    """Leave the model folder as a run stopped after writing step 8's checkpoint leaves it (the metrics of
    the steps after it are dropped by the run that resumes)."""
    shutil.rmtree(model_dir / "checkpoint-00000012")


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [(2, 2), (2, None), (None, 2)], ids=["2-2", "2-1", "1-2"])
def test_ddp_resumes_with_the_same_or_another_number_of_processes(
    tiny_args, tmp_path, one_process, first, then, largest_difference
):
    model_dir = tmp_path / "model"
    trained(*tiny_args(model_dir), *EXACT, nproc=first)
    interrupted_after_step_8(model_dir)
    done = trained(*tiny_args(model_dir), *EXACT, nproc=then)
    assert "resumed from step 8" in done.stderr
    assert largest_difference(model_dir, one_process) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("then", [2, 1])  # torch.distributed.checkpoint reshards 2 processes' state for 1
def test_fsdp_on_two_processes_follows_one_process_and_resumes(
    tiny_args, tmp_path, one_process, then, largest_difference, curve
):
    model_dir = tmp_path / "model"
    trained(*tiny_args(model_dir), *EXACT, nproc=2, strategy="fsdp")
    assert largest_difference(model_dir, one_process) <= 1e-4
    newest = model_dir / "checkpoint-00000012"
    assert (newest / "sharded" / ".metadata").is_file() and not (newest / "model.safetensors").exists()
    # one process reads the shards whole: `linctl eval` scores the checkpoint as the run did
    scored = subprocess.run([sys.executable, "-m", "linctl", "eval", "--model-dir", str(model_dir)],
                            capture_output=True, text=True)  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    loss = json.loads((newest / "eval.json").read_text())["loss"]
    assert loss == pytest.approx(curve(model_dir)[(12, "eval_loss")], abs=1e-6)
    interrupted_after_step_8(model_dir)
    done = trained(*tiny_args(model_dir), *EXACT, nproc=then, strategy="fsdp")
    assert "resumed from step 8" in done.stderr
    assert largest_difference(model_dir, one_process) <= 1e-4


@pytest.mark.slow
def test_a_checkpoint_of_another_strategy_is_refused(tiny_args, tmp_path, one_process):
    model_dir = Path(shutil.copytree(one_process, tmp_path / "model"))
    done = linctl(*tiny_args(model_dir), *EXACT, nproc=2, strategy="fsdp")
    assert done.returncode == 2
    assert set(done.stderr.splitlines()) == {  # each process says so
        f"error: {model_dir / 'checkpoint-00000012'} holds the weights of one process or DDP "
        f"(model.safetensors), which FSDP does not resume; set train.strategy ddp, or use another model_dir"
    }


@pytest.mark.slow
def test_electra_under_fsdp_follows_ddp(tiny_shards, tmp_path, largest_difference):
    """ELECTRA calls its generator before the model's forward. Its sampled replacements come from each
    process's own generator, so the runs to compare are two jobs of 2 processes (same draws)."""
    electra = ["--config", Path(__file__).parents[2] / "configs" / "electra" / "tiny.yaml",
               "--set", f"task.train_dir={tiny_shards['train']}",
               "--set", f"task.eval_dir={tiny_shards['eval']}", "--set", "model.dropout=0.0",
               "--set", "train.accumulate=2", "--set", "train.log_every=1"]  # fmt: skip
    for strategy in ("ddp", "fsdp"):
        trained(*electra, "--model-dir", tmp_path / strategy, nproc=2, strategy=strategy)
    assert largest_difference(tmp_path / "fsdp", tmp_path / "ddp") <= 1e-4


@pytest.mark.slow
def test_layerwise_projections_train_under_ddp_and_are_refused_by_fsdp(
    tiny_args, tmp_path, largest_difference
):
    layerwise = [*EXACT, "--set", "model.attention.sharing=layerwise"]  # one projection in every block
    trained(*tiny_args(tmp_path / "one"), *layerwise)
    trained(*tiny_args(tmp_path / "ddp"), *layerwise, nproc=2)
    assert largest_difference(tmp_path / "ddp", tmp_path / "one") <= 1e-5
    refused = linctl(*tiny_args(tmp_path / "fsdp"), *layerwise, nproc=2, strategy="fsdp")
    assert refused.returncode == 2
    assert set(refused.stderr.splitlines()) == {
        "error: train.strategy fsdp: blocks share the weight blocks.0.attention.projections.e_proj (also "
        "blocks.1.attention.projections.e_proj), e.g. layer-wise Linformer projections, and FSDP shards "
        "each block's weights as its own; use train.strategy ddp, or a model whose blocks share nothing"
    }
    assert not (tmp_path / "fsdp").exists()


def ranks_of(launcher: int) -> dict[int, int]:
    """Return the pids of the processes of the torchrun job that `linctl train --nproc` (pid
    ``launcher``) started, by rank."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            env = dict(
                item.split("=", 1)
                for item in (entry / "environ").read_bytes().decode(errors="replace").split("\0")
                if "=" in item
            )
        except (OSError, ValueError):  # not a process, gone, or not ours
            continue
        if env.get("TORCHELASTIC_RUN_ID") == f"linctl-{launcher}" and "RANK" in env:
            found[int(env["RANK"])] = int(entry.name)
    return found


def stopped_at_step_2(args: list[object], model_dir: Path, stop: Callable[[subprocess.Popen], None]):
    """Start `linctl train ARGS` and call ``stop(job)`` once step 2's checkpoint is in place; return the
    job, its stderr and the seconds from the stop to its end."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LINCTL_PROGRESS": "0"}
    job = subprocess.Popen(
        [sys.executable, "-m", "linctl", "train", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (model_dir / "checkpoint-00000002").is_dir():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.02)
    stop(job)
    stopped = time.monotonic()
    _, stderr = job.communicate(timeout=120)
    return job, stderr, time.monotonic() - stopped


@pytest.mark.slow
def test_killed_process_ends_the_job_in_one_line_and_the_rerun_resumes(
    tiny_args, tmp_path, one_process, largest_difference
):
    model_dir = tmp_path / "model"
    args = [*tiny_args(model_dir), *EXACT, "--set", "train.checkpoint_every=2", "--nproc", "2"]
    job, stderr, seconds = stopped_at_step_2(
        args, model_dir, lambda job: os.kill(ranks_of(job.pid)[1], signal.SIGKILL)
    )
    assert seconds < 60
    assert job.returncode == 1, stderr
    assert stderr.splitlines()[-1] == (
        "error: process 1 of 2 was killed by SIGKILL; torchrun stopped the others; finished checkpoints "
        "are kept, run the same command again to resume from the newest"
    )
    # no traceback nor torchrun's log: the other process says in one line why it stopped (the lost peer,
    # or torchrun's SIGTERM), if it had the time
    others = stderr.splitlines()[:-1]
    assert all(line.startswith(("error: process 0 of 2 stopped", "terminated: ")) for line in others), stderr
    assert not ranks_of(job.pid)  # no process of the job is left
    done = linctl(*args)
    assert done.returncode == 0, done.stderr
    assert "resumed from step" in done.stderr
    assert largest_difference(model_dir, one_process) <= 1e-5


@pytest.mark.slow
def test_sigterm_stops_the_job_as_it_stops_one_process(tiny_args, tmp_path):
    model_dir = tmp_path / "model"
    args = [*tiny_args(model_dir), *EXACT, "--set", "train.checkpoint_every=2", "--nproc", "2"]
    job, stderr, seconds = stopped_at_step_2(args, model_dir, lambda job: job.send_signal(signal.SIGTERM))
    assert seconds < 60 and job.returncode == 143, stderr
    assert set(stderr.splitlines()) == {
        "terminated: finished output files are kept; run the same command again to resume"
    }  # each process says so; torchrun's own log is not shown
    assert not ranks_of(job.pid)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.strategy=zero3"], "train.strategy"),
        (["--nproc", "0"], "--nproc 0: the number of processes must be at least 1"),
        (["--nproc", "2"], "train.accumulate 1 is not a multiple of the 2 processes"),
    ],
    ids=["strategy", "nproc", "accumulate"],
)
def test_bad_distributed_options_are_refused_in_one_line(cli, tiny_run, tmp_path, args, message):
    result = cli("train", *tiny_run, *args, ok=False)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "model").exists()


@pytest.fixture(scope="module")
def translation(data_dir, cli, tmp_path_factory) -> list[object]:
    """`linctl train` arguments of configs/translation/tiny.yaml (beam search, BLEU and chrF at each
    evaluation) on 300 pairs of the WMT14 BPE sample, scored on 21 of newstest2014."""
    wmt, text = data_dir / "wmt14-en-de", tmp_path_factory.mktemp("parallel")
    for lang in ("en", "de"):
        lines = (wmt / "train-sample-10k-bpe" / f"train.{lang}").read_text(encoding="utf-8").splitlines(True)
        (text / f"train.{lang}").write_text("".join(lines[:300]), encoding="utf-8")
        lines = (wmt / f"newstest2014.{lang}").read_text(encoding="utf-8").splitlines(True)
        (text / f"test.{lang}").write_text("".join(lines[:21]), encoding="utf-8")
    rows = (wmt / "newstest2013.de-en.csv").read_text(encoding="utf-8").splitlines(True)
    (text / "valid.de-en.csv").write_text("".join(rows[:30]), encoding="utf-8")
    out = tmp_path_factory.mktemp("mt") / "out"
    cli("prepare", "translation", "--input", text, "--output-dir", out, "--source-lang", "en",
        "--target-lang", "de", "--vocab-size", 211, "--max-length", 46)  # fmt: skip
    vocab = json.loads((out / "tokenizer" / "manifest.json").read_text())["counts"]["vocab_size"]
    return ["--config", Path(__file__).parents[2] / "configs" / "translation" / "tiny.yaml",
            "--set", f"task.train_dir={out / 'train'}", "--set", f"task.eval_dir={out / 'test'}",
            "--set", f"model.vocab_size={vocab}"]  # fmt: skip


@pytest.mark.slow
def test_fsdp_translates_as_one_process(translation, tmp_path, largest_difference):
    """Beam search under FSDP: each process decodes its own batches, as many steps as they need."""
    for name, nproc in (("one", None), ("fsdp", 2)):
        trained(*translation, *EXACT, "--model-dir", tmp_path / name, nproc=nproc, strategy="fsdp")
    assert largest_difference(tmp_path / "fsdp", tmp_path / "one") <= 1e-4
    scores = [
        [(r["eval_bleu"], r["eval_chrf"]) for r in map(json.loads, (tmp_path / name / "metrics.jsonl").open())
         if "eval_bleu" in r]
        for name in ("one", "fsdp")
    ]  # fmt: skip
    assert len(scores[0]) == 2 and scores[0] == scores[1]
