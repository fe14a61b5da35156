"""The funnel through the CLI on real data: MLM and ELECTRA pretraining on WikiText-2 shards, then SST-2
fine-tuning of the encoder alone from the ELECTRA checkpoint (configs/mlm/tiny-funnel.yaml,
configs/electra/tiny.yaml, configs/glue/tiny-funnel.yaml)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MLM = REPO / "configs" / "mlm" / "tiny-funnel.yaml"
ELECTRA = REPO / "configs" / "electra" / "tiny.yaml"
GLUE = REPO / "configs" / "glue" / "tiny-funnel.yaml"


def pretrain(cli, config: Path, shards: dict[str, Path], model_dir: Path) -> Path:
    cli("train", "--config", config, "--set", f"task.train_dir={shards['train']}",
        "--set", f"task.eval_dir={shards['eval']}", "--model-dir", model_dir)  # fmt: skip
    return model_dir


@pytest.fixture(scope="module")
def pretrained(cli, tiny_shards, tmp_path_factory) -> Path:
    """The run folder of 6 ELECTRA steps of configs/electra/tiny.yaml on the tiny shards."""
    return pretrain(cli, ELECTRA, tiny_shards, tmp_path_factory.mktemp("funnel") / "electra")


@pytest.fixture(scope="module")
def sst2(cli, data_dir, tiny_shards, tmp_path_factory) -> Path:
    """SST-2 (200 training sentences, dev) in the tiny shards' vocabulary, cut at 16 tokens."""
    root = tmp_path_factory.mktemp("sst2")
    source = root / "source"
    source.mkdir()
    shutil.copy(data_dir / "glue" / "SST-2" / "dev.tsv", source)
    train = (data_dir / "glue" / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (source / "train.tsv").write_text("\n".join(train[:201]) + "\n", encoding="utf-8")
    cli("prepare", "glue", "--task", "SST-2", "--input", source, "--vocab-file", tiny_shards["vocab"],
        "--do-lower-case", "--max-seq-length", 16, "--splits", "train,dev",
        "--output-dir", root / "out")  # fmt: skip
    return root / "out"


@pytest.mark.slow  # the MLM objective is the encoder's, tested in tests/cli/test_train.py
def test_mlm_pretraining_trains_and_evaluates(cli, tiny_shards, tmp_path):
    model_dir = pretrain(cli, MLM, tiny_shards, tmp_path / "mlm")
    logged = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "eval_ppl" in r] == [3, 6]
    cli("eval", "--model-dir", model_dir, "--json", tmp_path / "eval.json")
    assert json.loads((tmp_path / "eval.json").read_text())["ppl"] > 1.0


def test_electra_pretraining_trains_and_evaluates(cli, pretrained, tmp_path):
    assert (pretrained / "checkpoint-00000006" / "model.safetensors").is_file()
    logged = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in logged if "eval_disc_loss" in r]
    assert [r["step"] for r in evaluated] == [3, 6]
    assert all(0.0 < r["eval_replaced"] < 1.0 and r["eval_gen_loss"] > 0 for r in evaluated)
    cli("eval", "--model-dir", pretrained, "--json", tmp_path / "eval.json")
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["loss"] == pytest.approx(metrics["gen_loss"] + 50 * metrics["disc_loss"])
    assert metrics["disc_loss"] == evaluated[-1]["eval_disc_loss"]  # eval samples the same replacements


def glue_args(sst2: Path) -> list[object]:
    """configs/glue/tiny-funnel.yaml on the SST-2 shards, at the tiny vocabulary and length."""
    return ["--config", GLUE, "--set", f"task.train_dir={sst2 / 'train'}",
            "--set", f"task.eval_dir={sst2 / 'dev'}", "--set", "model.vocab_size=211",
            "--set", "model.max_seq_length=16"]  # fmt: skip


def test_fine_tuning_starts_the_encoder_from_the_pretrained_funnel(cli, pretrained, sst2, tmp_path):
    args = [*glue_args(sst2), "--set", "model.block_sizes=1_1x2"]  # the blocks as pretrained
    cli("validate", *args)
    args += ["--model-dir", tmp_path / "sst2"]
    started = cli("train", *args, "--init-checkpoint", pretrained / "checkpoint-00000006")
    assert "initialised afresh: pooler.weight, pooler.bias, head.weight, head.bias" in started.stderr
    assert "left out: decoder." in started.stderr and "discriminator." in started.stderr
    state = json.loads((tmp_path / "sst2" / "checkpoint-00000006" / "trainer_state.json").read_text())
    assert state["step"] == 6
    cli("eval", *args, "--json", tmp_path / "eval.json")
    assert 0.0 <= json.loads((tmp_path / "eval.json").read_text())["accuracy"] <= 1.0


def test_a_checkpoint_of_another_funnel_is_refused_in_one_line(cli, pretrained, sst2, tmp_path):
    args = [*glue_args(sst2), "--model-dir", tmp_path / "m"]
    refused = cli("train", *args, "--init-checkpoint", pretrained / "checkpoint-00000006", ok=False)
    assert refused.exit_code == 2
    (line,) = refused.stderr.strip().splitlines()
    assert "block_sizes" in line and "block_repeats" in line


def test_a_hugging_face_funnel_starts_a_run_and_gives_the_sizes_it_leaves_out(cli, sst2, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.FunnelConfig(vocab_size=211, d_model=48, n_head=4, d_head=12, d_inner=52,
                                       block_sizes=[1, 1], num_decoder_layers=1)  # fmt: skip
    transformers.FunnelModel(config).save_pretrained(tmp_path / "hf")
    run = yaml.safe_load(GLUE.read_text())
    run["model"] = {"kind": "funnel-classifier", "num_labels": 2, "max_seq_length": 16}
    run["train"] |= {"steps": 3, "init_checkpoint": str(tmp_path / "hf")}
    run["task"] |= {"train_dir": str(sst2 / "train"), "eval_dir": str(sst2 / "dev")}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    started = cli("train", "--config", tmp_path / "run.yaml", "--model-dir", tmp_path / "m")
    assert "initialised afresh: pooler.weight, pooler.bias, head.weight, head.bias" in started.stderr
    assert "left out: decoder." in started.stderr
    (saved,) = (tmp_path / "m").glob("checkpoint-*/config.yaml")
    model = yaml.safe_load(saved.read_text())["model"]
    assert (model["d_model"], model["block_sizes"], model["activation"]) == (48, [1, 1], "gelu_new")
    cli("eval", "--model-dir", tmp_path / "m", "--json", tmp_path / "eval.json")  # rebuilds the same model
    assert 0.0 <= json.loads((tmp_path / "eval.json").read_text())["accuracy"] <= 1.0
