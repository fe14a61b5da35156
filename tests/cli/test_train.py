"""`linctl train` on the tiny config: what a finished run leaves in its model folder."""

import json

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
                                           "k": 7, "sharing": "key-value"}  # fmt: skip
    assert json.loads((newest / "trainer_state.json").read_text())["step"] == 12
    logged = records(model_dir)
    assert [r["step"] for r in logged if "train_loss" in r] == [2, 4, 6, 8, 10, 12]
    assert [r["step"] for r in logged if "eval_ppl" in r] == [4, 8, 12]
    assert all(0.0 <= r["padding"] < 1.0 and r["tokens_per_s"] > 0 for r in logged if "padding" in r)
    assert "eval ppl" in result.stdout and "padding" in result.stdout


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
