"""`linctl train` on the tiny config: what a finished run leaves in its model folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def records(model_dir):
    return [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]


def test_run_leaves_checkpoints_metrics_and_the_vocabulary(cli, tiny_run, tiny_shards, tmp_path):
    result = cli("train", *tiny_run, "--set", "train.keep_checkpoints=2")
    model_dir = tmp_path / "model"
    assert sorted(p.name for p in model_dir.glob("checkpoint-*")) == [
        "checkpoint-00000008",
        "checkpoint-00000012",
    ]
    newest = model_dir / "checkpoint-00000012"
    assert {p.name for p in newest.iterdir()} == {
        "model.safetensors", "optimizer.pt", "trainer_state.json", "config.yaml", "vocab.txt"
    }  # fmt: skip
    assert (newest / "vocab.txt").read_bytes() == tiny_shards["vocab"].read_bytes()
    saved = yaml.safe_load((newest / "config.yaml").read_text())
    assert saved["model"]["attention"] == {"kind": "linformer", "dropout": 0.0, "causal": False, "bias": True,
                                           "k": 7, "sharing": "key-value",
                                           "projection_order": "auto"}  # fmt: skip
    state = json.loads((newest / "trainer_state.json").read_text())
    assert state["step"] == 12 and state["schema_version"] == 1
    logged = records(model_dir)
    assert all(r["schema_version"] == 1 for r in logged)
    assert [r["step"] for r in logged if "train_loss" in r] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in logged if "eval_ppl" in r] == [4, 8, 12]
    timed = [r for r in logged if "padding" in r]
    assert [r["step"] for r in timed] == [2, 4, 6, 8, 10, 12]  # every training record
    assert all(0.0 <= r["padding"] < 1.0 and r["tokens_per_s"] > 0 for r in timed)
    assert "eval ppl" in result.stdout and "padding" in result.stdout


def test_pipelines_read_the_files_that_train_and_eval_write(cli, tiny_run, tmp_path):
    cli("train", *tiny_run, "--set", "train.steps=8", "--set", "task.eval_examples=40")
    model_dir = tmp_path / "model"
    cli("eval", "--model-dir", model_dir, "--set", "task.eval_examples=40")
    scored = json.loads((model_dir / "checkpoint-00000008" / "eval.json").read_text())
    assert scored["schema_version"] == 1 and scored["step"] == 8
    script = Path(__file__).resolve().parents[2] / "pipelines" / "mlm_curves.py"
    shown = subprocess.run(
        [sys.executable, script, tmp_path / "curves.png", model_dir],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"| model | 8 | {scored['ppl']:.2f} | +0.0% | {scored['accuracy']:.4f} |" in shown


def test_learning_rate_follows_warmup_then_linear_decay(cli, tiny_run, tmp_path):
    cli("train", *tiny_run)
    lrs = {r["step"]: r["lr"] for r in records(tmp_path / "model") if "lr" in r}
    assert lrs[2] == 1e-3  # the second step ends the two-step warm-up
    assert lrs[10] == pytest.approx(1e-3 * 2 / 10)  # linear decay over the ten steps after warm-up
    assert lrs[12] == 0.0  # ... down to end_lr at the last step


def test_accumulation_bf16_and_no_eval_data(cli, tiny_run, tmp_path):
    extra = ["--set", "train.accumulate=2", "--set", "train.precision=bf16", "--set", "task.eval_dir=null"]
    cli("train", *tiny_run, *extra, "--set", "train.steps=4")
    logged = records(tmp_path / "model")
    assert [r["step"] for r in logged] == [2, 4]  # no eval records without eval data
    assert all(r["train_loss"] > 0 for r in logged)


@pytest.mark.slow  # Inductor compiles the forward and backward programs: minutes on two cores
def test_compiled_training_matches_eager_and_saves_plain_weights(cli, tiny_run, tmp_path):
    from safetensors.torch import load_file

    no_dropout = ["--set", "model.dropout=0.0", "--set", "model.attention.dropout=0.0"]
    short = ["--set", "train.steps=3", "--set", "train.log_every=1", "--set", "train.eval_every=0"]
    short += ["--set", "task.eval_examples=20", "--set", "train.checkpoint_every=0"]
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    cli("train", *tiny_run[:6], *no_dropout, *short, "--model-dir", eager)
    cli("train", *tiny_run[:6], *no_dropout, *short, "--model-dir", compiled, "--compile")

    losses = [[r["train_loss"] for r in records(folder) if "train_loss" in r] for folder in (eager, compiled)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    weights = [
        load_file(folder / "checkpoint-00000003" / "model.safetensors") for folder in (eager, compiled)
    ]
    assert weights[0].keys() == weights[1].keys()  # no `_orig_mod.` prefix from the compiled wrapper
    for name, value in weights[0].items():
        assert (value - weights[1][name]).abs().max() < 1e-4, name


@pytest.mark.slow  # the preflight's largest-batch search at a huge batch (about 50 s here)
def test_compile_refuses_a_config_that_does_not_pass_validate(cli, tiny_run, tmp_path):
    result = cli("train", *tiny_run, "--compile", "--set", "train.batch_size=100000000", ok=False)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: train.compile: the config does not pass `linctl validate`:"
    assert "train.batch_size 100000000" in lines[1] and "largest batch estimated to fit" in lines[1]
    assert not list((tmp_path / "model").glob("checkpoint-*"))
