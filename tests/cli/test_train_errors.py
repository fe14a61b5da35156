"""`linctl train` and `linctl eval`: expected failures are one line `error: …` with exit 2; eval numbers."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "configs" / "mlm" / "tiny.yaml"
# The tiny eval shards hold ~10k examples: evaluate on a few, once, to keep tests fast.
QUICK = ["--set", "task.eval_examples=40", "--set", "train.eval_every=0"]


def one_line_error(result) -> str:
    """Return the `error: …` line of a run that must have failed with exit 2 and nothing else on stderr."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def problem_lines(result) -> list[str]:
    """Return the problems of a run that failed with exit 2 listing several: `error: ` opens the first."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: "), result.stderr
    return lines


def checkpoint_names(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.glob("checkpoint-*"))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.d_model=30", ["d_model (30)", "n_heads (4)"]),
        ("model.attention.k=17", ["model", "k (17)", "max_seq_length (16)"]),
        ("model.attention.causal=true", ["model.attention", "no causal form", "softmax"]),
        ("optim.warmup_steps=12", ["optim.warmup_steps (12)", "train.steps (12)"]),
        ("train.bogus=1", ["train.bogus: unknown key", "allowed here:", "batch_size", "steps"]),
        ("model.attention.kind=nope", ["model.attention", "'nope'", "'softmax'", "'linformer'"]),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_config_fails_before_training(cli, tmp_path, override, expected):
    model_dir = tmp_path / "model"
    result = cli("train", "--config", TINY, "--set", override, "--model-dir", model_dir, ok=False)
    line = one_line_error(result)
    assert str(TINY) in line
    for part in expected:
        assert part in line
    assert not model_dir.exists()


def test_shards_of_another_max_seq_length(cli, tiny_run, tiny_shards):
    lines = problem_lines(cli("train", *tiny_run, "--set", "model.max_seq_length=32", ok=False))
    assert len(lines) == 2  # train and eval shards, each named
    for line, key in zip(lines, ("train", "eval"), strict=True):
        assert f"task.{key}_dir {tiny_shards[key]}" in line
        assert "max_seq_length 16" in line and "model.max_seq_length is 32" in line


def test_shards_of_another_vocabulary_size(cli, tiny_run, tiny_shards):
    lines = problem_lines(cli("train", *tiny_run, "--set", "model.vocab_size=300", ok=False))
    assert len(lines) == 2
    for line, key in zip(lines, ("train", "eval"), strict=True):
        assert f"task.{key}_dir {tiny_shards[key]}" in line
        assert "211" in line and "300" in line and "model.vocab_size" in line


def test_train_dir_that_does_not_exist(cli, tiny_run, tmp_path):
    absent = tmp_path / "absent"
    line = one_line_error(cli("train", *tiny_run, "--set", f"task.train_dir={absent}", ok=False))
    assert f"task.train_dir {absent}" in line and "no such folder" in line


def test_train_dir_that_holds_no_mlm_shards(cli, tiny_run, tiny_shards):
    vocab_dir = tiny_shards["vocab"].parent  # a `prepare vocab` output folder
    line = one_line_error(cli("train", *tiny_run, "--set", f"task.train_dir={vocab_dir}", ok=False))
    assert line.endswith(f"{vocab_dir}: holds 'vocab' output, not `prepare mlm` shards")


def test_eval_shards_with_another_vocabulary(cli, tiny_run, tiny_shards, tiny_mlm_shards, tmp_path):
    pieces = tiny_shards["vocab"].read_text(encoding="utf-8").splitlines()
    pieces[-2], pieces[-1] = pieces[-1], pieces[-2]  # same size, other ids
    vocab = tmp_path / "other-vocab.txt"
    vocab.write_text("\n".join(pieces) + "\n", encoding="utf-8")
    other = tiny_mlm_shards(tmp_path / "other-eval", vocab, slice(400, 440))
    args = ["--set", f"task.eval_dir={other}", "--set", "train.steps=1", "--set", "optim.warmup_steps=0"]
    line = one_line_error(cli("train", *tiny_run, *QUICK, *args, ok=False))
    assert f"task.eval_dir {other}" in line and "another vocabulary" in line
    assert str(tiny_shards["train"]) in line


def test_bad_eval_dir_fails_before_the_first_step(cli, tiny_run, tmp_path):
    absent = tmp_path / "absent"
    args = ["--set", f"task.eval_dir={absent}", "--set", "train.steps=3", "--set", "optim.warmup_steps=0"]
    args += ["--set", "train.checkpoint_every=1", "--set", "train.eval_every=0"]
    line = one_line_error(cli("train", *tiny_run, *args, ok=False))
    assert f"task.eval_dir {absent}" in line
    assert checkpoint_names(tmp_path / "model") == []


def test_non_finite_loss_names_the_step_and_keeps_earlier_checkpoints(cli, tiny_run, tmp_path):
    blow_up = ["--set", "optim.lr=1e30", "--set", "optim.clip_grad_norm=null"]
    blow_up += ["--set", "optim.warmup_steps=0"]
    result = cli("train", *tiny_run, *QUICK, *blow_up, "--set", "train.checkpoint_every=1", ok=False)
    line = one_line_error(result)
    step = int(re.search(r"at step (\d+)", line).group(1))
    assert re.search(r"loss (nan|inf|-inf)", line) and "optim.lr" in line
    assert step >= 2, "lr 1e30 should leave the first step's loss finite"
    kept = checkpoint_names(tmp_path / "model")
    assert kept and kept[-1] == f"checkpoint-{step - 1:08d}"
    assert f"checkpoint-{step - 1:08d}" in line


@pytest.fixture(scope="module")
def trained(cli, tiny_shards, tmp_path_factory) -> Path:
    """A model folder of configs/mlm/tiny.yaml trained for its 12 steps (checkpoints 4, 8, 12)."""
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    cli("train", "--config", TINY, "--set", f"task.train_dir={tiny_shards['train']}",
        "--set", f"task.eval_dir={tiny_shards['eval']}", *QUICK, "--model-dir", model_dir)  # fmt: skip
    return model_dir


def test_resume_refuses_checkpoints_of_another_model(cli, trained, tiny_shards):
    before = sorted(p.name for p in trained.iterdir())
    log = (trained / "metrics.jsonl").read_text()
    args = ["--config", TINY, "--set", f"task.train_dir={tiny_shards['train']}", "--model-dir", trained]
    wider = ["--set", "model.d_model=36", "--set", "model.n_heads=4", "--set", "train.steps=16"]
    line = one_line_error(cli("train", *args, *wider, ok=False))
    assert "checkpoint-00000012" in line and "another model" in line
    assert "d_model" in line and "32" in line and "36" in line and "n_heads" not in line
    assert sorted(p.name for p in trained.iterdir()) == before
    assert (trained / "metrics.jsonl").read_text() == log


def test_eval_prints_and_writes_metrics_that_match_training(cli, trained, tmp_path):
    result = cli("eval", "--model-dir", trained)
    written = json.loads((trained / "checkpoint-00000012" / "eval.json").read_text())
    assert written["step"] == 12 and written["task"] == "mlm" and written["schema_version"] == 1
    assert written["ppl"] == pytest.approx(math.exp(written["loss"]), rel=1e-9)
    assert 0.0 <= written["accuracy"] <= 1.0
    assert "ppl" in result.stdout and f"{written['ppl']:,.4g}" in result.stdout

    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    final = [record for record in records if "eval_loss" in record][-1]
    again, old_name = tmp_path / "again.json", tmp_path / "old-name.json"
    cli("eval", "--checkpoint", trained / "checkpoint-00000012", "--json", again)
    cli("eval", "--checkpoint", trained / "checkpoint-00000012", "--output", old_name)  # --json's old name
    from_checkpoint = json.loads(again.read_text())
    assert json.loads(old_name.read_text()) == from_checkpoint
    assert from_checkpoint["step"] == final["step"] == 12
    for key in ("loss", "ppl", "accuracy"):
        assert from_checkpoint[key] == pytest.approx(final[f"eval_{key}"], rel=1e-6)
        assert written[key] == pytest.approx(final[f"eval_{key}"], rel=1e-6)


def test_eval_refuses_another_architecture(cli, trained):
    line = one_line_error(cli("eval", "--model-dir", trained, "--set", "model.n_layers=3", ok=False))
    assert "checkpoint-00000012" in line and "n_layers" in line and "3" in line


def test_eval_of_a_folder_without_checkpoints(cli, trained, tmp_path):
    shutil.copytree(trained, tmp_path / "model", ignore=shutil.ignore_patterns("checkpoint-*"))
    line = one_line_error(cli("eval", "--model-dir", tmp_path / "model", ok=False))
    assert f"{tmp_path / 'model'}: no complete checkpoint" in line


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def refusal(kind: str, tiny_shards: dict[str, Path], tmp_path: Path) -> list[str]:
    """`linctl train` options that make a run be refused before its first step, for ``kind``."""
    shards = tmp_path / "train-copy"
    if kind == "unfit --init-checkpoint":
        (tmp_path / "not-a-checkpoint").mkdir()
        return ["--init-checkpoint", str(tmp_path / "not-a-checkpoint")]
    shutil.copytree(tiny_shards["train"], shards)
    if kind == "corrupt shard":
        shard = sorted(shards.glob("*.arrow"))[0]
        shard.write_bytes(shard.read_bytes()[:100])
    else:  # an edited manifest
        manifest = json.loads((shards / "manifest.json").read_text())
        first = sorted(manifest["files"])[0]
        manifest["files"][first] = "0" * 64  # a sha256 that no longer matches its shard
        (shards / "manifest.json").write_text(json.dumps(manifest))
    return ["--set", f"task.train_dir={shards}"]


KINDS = ["corrupt shard", "edited manifest", "unfit --init-checkpoint"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_run_leaves_no_model_folder(cli, tiny_run, tiny_shards, tmp_path, kind):
    one_line_error(cli("train", *tiny_run, *refusal(kind, tiny_shards, tmp_path), ok=False))
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("kind", ["corrupt shard", "edited manifest"])
def test_a_refused_resume_leaves_the_model_folder_as_it_was(
    cli, trained, tiny_args, tiny_shards, tmp_path, kind
):
    model_dir = tmp_path / "model"
    shutil.copytree(trained, model_dir)
    (model_dir / "checkpoint-00000016.tmp-4242").mkdir()  # what a killed save left: removed only by a run
    before = tree(model_dir)
    args = [*tiny_args(model_dir), "--set", "train.steps=16", *refusal(kind, tiny_shards, tmp_path)]
    one_line_error(cli("train", *args, ok=False))
    assert tree(model_dir) == before


def damage(found: Path, name: str) -> None:
    """Damage the checkpoint file ``name`` of ``found`` the way named in DAMAGES."""
    path = found / name
    if name == "trainer_state.json (missing)":
        (found / "trainer_state.json").unlink()
    elif name in ("optimizer.pt", "model.safetensors"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a copy cut short
    elif name == "trainer_state.json":
        path.write_text('{"step": 12, "rng": ', encoding="utf-8")
    else:
        path.write_text("model: [d_model: 32\n", encoding="utf-8")


DAMAGES = {  # file: what the error says is wrong with it
    "trainer_state.json (missing)": "trainer_state.json is missing",
    "trainer_state.json": "trainer_state.json is not valid JSON (",
    "optimizer.pt": "optimizer.pt is truncated or not a torch file",
    "model.safetensors": "model.safetensors is truncated or not a safetensors file (",
    "config.yaml": "config.yaml is not valid YAML (",
}


@pytest.mark.parametrize("command", ["eval", "train"])
@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_checkpoint_is_named_with_what_to_do(
    cli, trained, tiny_args, tmp_path, monkeypatch, name, command
):
    if command == "eval" and name == "optimizer.pt":
        pytest.skip("eval does not read the optimizer state")
    model_dir = tmp_path / "model"
    shutil.copytree(trained, model_dir)
    newest = model_dir / "checkpoint-00000012"
    damage(newest, name)
    before = tree(model_dir)
    if command == "eval":
        from linctl.evaluate import run

        def no_evaluation(*args, **kwargs):
            raise AssertionError("a damaged checkpoint must be refused before anything is evaluated")

        monkeypatch.setattr(run.TASKS, "build", no_evaluation)
        args = ["eval", "--model-dir", model_dir, "--all-checkpoints", *QUICK]
    else:  # resuming from the damaged newest checkpoint, not silently from the one before
        args = ["train", *tiny_args(model_dir), "--set", "train.steps=16"]
    line = one_line_error(cli(*args, ok=False))
    assert line.startswith(f"error: checkpoint file {newest}/") and DAMAGES[name] in line
    assert f"delete the checkpoint folder {newest} to use the one before it, or train again" in line
    assert tree(model_dir) == before


def test_a_disk_that_fills_during_a_checkpoint_names_it_and_leaves_no_temporary_folder(
    cli, tiny_run, tmp_path, monkeypatch
):
    import errno
    import os

    import torch

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    line = one_line_error(cli("train", *tiny_run, *QUICK, "--set", "train.checkpoint_every=4", ok=False))
    first = tmp_path / "model" / "checkpoint-00000004"
    assert line.startswith(f"error: checkpoint {first} could not be written (No space left on device)")
    assert "the newest checkpoint is none" in line
    assert not [p.name for p in (tmp_path / "model").iterdir() if p.name.startswith("checkpoint-")]
