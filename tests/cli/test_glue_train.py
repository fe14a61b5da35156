"""Fine-tuning the classifier on real SST-2 and STS-B shards: train, validate and eval through the CLI."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "glue" / "tiny.yaml"


@pytest.fixture(scope="module")
def glue_shards(tmp_path_factory, data_dir, cli) -> Path:
    """SST-2 (its first 600 training sentences: 12 steps use 60), STS-B and CoLA, cut at 64 tokens with
    BERT's uncased vocabulary."""
    root = tmp_path_factory.mktemp("glue")
    vocab = data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt"
    sst2 = root / "source" / "SST-2"
    sst2.mkdir(parents=True)
    for name in ("dev.tsv", "test.tsv"):
        shutil.copy(data_dir / "glue" / "SST-2" / name, sst2)
    train = (data_dir / "glue" / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    (sst2 / "train.tsv").write_text("\n".join(train[:601]) + "\n", encoding="utf-8")
    for task, source in (("SST-2", sst2), ("STS-B", data_dir / "glue" / "STS-B")):
        cli("prepare", "glue", "--task", task, "--input", source, "--vocab-file", vocab,
            "--do-lower-case", "--max-seq-length", 64, "--splits", "train,dev,test",
            "--output-dir", root / task)  # fmt: skip
    cli("prepare", "glue", "--task", "CoLA", "--input", data_dir / "glue" / "CoLA", "--vocab-file", vocab,
        "--do-lower-case", "--max-seq-length", 64, "--output-dir", root / "CoLA")  # fmt: skip
    return root


def run_args(shards: Path, task: str, model_dir: Path) -> list[object]:
    return ["--config", TINY, "--set", f"task.train_dir={shards / task / 'train'}",
            "--set", f"task.eval_dir={shards / task / 'dev'}", "--model-dir", model_dir]  # fmt: skip


@pytest.mark.slow  # a minute; STS-B and the evaluation-split tests run the same path by default
def test_sst2_trains_and_evaluates_with_accuracy(cli, glue_shards, data_dir, tmp_path):
    model_dir = tmp_path / "sst2"
    cli("train", *run_args(glue_shards, "SST-2", model_dir))
    newest = model_dir / "checkpoint-00000012"
    assert (newest / "vocab.txt").is_file()
    cli("eval", *run_args(glue_shards, "SST-2", model_dir))
    metrics = json.loads((newest / "eval.json").read_text())
    assert metrics["task"] == "classification" and metrics["step"] == 12
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0

    cli("eval", *run_args(glue_shards, "SST-2", model_dir), "--all-checkpoints")
    every = json.loads((model_dir / "eval-all.json").read_text())
    assert [r["step"] for r in every["checkpoints"]] == [6, 12] and every["schema_version"] == 1
    assert every["best"]["accuracy"] == max(r["accuracy"] for r in every["checkpoints"])

    cli("eval", *run_args(glue_shards, "SST-2", model_dir), "--predict", glue_shards / "SST-2" / "test")
    lines = (newest / "SST-2.tsv").read_text().splitlines()
    test = (data_dir / "glue" / "SST-2" / "test.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == len(test)  # a header and a line per sentence
    assert lines[1].split("\t")[0] == "0" and {line.split("\t")[1] for line in lines[1:]} <= {"0", "1"}

    again = cli("train", *run_args(glue_shards, "SST-2", tmp_path / "again"), "--init-checkpoint", newest)
    assert f"started from {newest}: " in again.stderr and "afresh" not in again.stderr  # a note


def test_stsb_is_a_regression_with_correlations(cli, glue_shards, tmp_path):
    model_dir = tmp_path / "stsb"
    cli("train", *run_args(glue_shards, "STS-B", model_dir), "--set", "model.num_labels=1")
    cli("eval", *run_args(glue_shards, "STS-B", model_dir), "--set", "model.num_labels=1")
    metrics = json.loads((model_dir / "checkpoint-00000012" / "eval.json").read_text())
    assert set(metrics) >= {"loss", "pearson", "spearman"} and "accuracy" not in metrics
    assert -1.0 <= metrics["pearson"] <= 1.0 and -1.0 <= metrics["spearman"] <= 1.0


def test_validate_names_a_label_count_that_does_not_fit(cli, glue_shards, tmp_path):
    result = cli("validate", *run_args(glue_shards, "STS-B", tmp_path / "m")[:6], ok=False)
    assert result.exit_code == 2
    problems = result.stderr.strip().splitlines()[1:]
    assert len(problems) == 2  # train and dev, each named
    for problem, split in zip(problems, ("train", "dev"), strict=True):
        assert f"STS-B/{split}" in problem and "a regression score" in problem
        assert "model.num_labels is 2; set model.num_labels: 1" in problem


def test_more_evaluation_splits_are_scored_under_their_names(cli, glue_shards, tmp_path):
    model_dir, cola = tmp_path / "cola", glue_shards / "CoLA"
    more = f"task.more_eval_dirs=[{cola / 'dev_in_domain'}, {cola / 'dev_out_of_domain'}]"
    cli("train", *run_args(glue_shards, "CoLA", model_dir), "--set", more, "--set", "train.eval_every=0")
    logged = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    (final,) = [r for r in logged if "eval_matthews" in r]
    assert {"eval_loss", "eval_dev_in_domain_matthews", "eval_dev_out_of_domain_matthews"} <= set(final)
    assert all(-1.0 <= final[key] <= 1.0 for key in final if key.endswith("matthews"))


def test_a_hugging_face_bert_of_another_model_is_refused_and_unused_tensors_named(cli, glue_shards, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64,
        max_position_embeddings=64, layer_norm_eps=1e-5,
    )  # fmt: skip
    transformers.BertForPreTraining(config).save_pretrained(tmp_path / "bert")
    args = [*run_args(glue_shards, "SST-2", tmp_path / "m"), "--init-checkpoint", tmp_path / "bert"]
    refused = cli("train", *args, ok=False)  # tiny.yaml's model is a Linformer
    assert refused.exit_code == 2 and not (tmp_path / "m").exists()
    (line,) = refused.stderr.strip().splitlines()
    assert "its model differs from the run's (attention.kind: 'softmax' there, 'linformer' here;" in line

    started = cli("train", *args, "--set", "model.attention={kind: softmax}", "--set", "train.steps=3")
    assert f"started from {tmp_path / 'bert'}: 31 tensors; initialised afresh: head.weight, head.bias; " in (
        started.stderr
    )
    left = "left out: mlm.dense.weight, mlm.dense.bias, mlm.norm.weight, mlm.norm.bias, mlm.decoder.bias, "
    assert (
        left + "mlm.decoder.weight, cls.seq_relationship.bias, cls.seq_relationship.weight\n"
        in started.stderr
    )


def test_a_hugging_face_bert_gives_the_sizes_a_run_config_leaves_out(cli, glue_shards, tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=36, num_attention_heads=3, num_hidden_layers=3, intermediate_size=53,
        max_position_embeddings=64, layer_norm_eps=1e-6,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    run = yaml.safe_load(TINY.read_text())
    run["model"] = {"kind": "classifier", "num_labels": 2}
    run["train"] |= {"steps": 3, "init_checkpoint": str(tmp_path / "bert")}
    run["task"] |= {
        "train_dir": str(glue_shards / "SST-2" / "train"),
        "eval_dir": str(glue_shards / "SST-2" / "dev"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    cli("validate", "--config", tmp_path / "run.yaml", "--no-data")
    cli("train", "--config", tmp_path / "run.yaml", "--model-dir", tmp_path / "m")
    (saved,) = (tmp_path / "m").glob("checkpoint-*/config.yaml")
    model = yaml.safe_load(saved.read_text())["model"]
    assert {key: model[key] for key in ("d_model", "n_heads", "n_layers", "d_ff", "layer_norm_eps")} == {
        "d_model": 36, "n_heads": 3, "n_layers": 3, "d_ff": 53, "layer_norm_eps": 1e-6
    }  # fmt: skip
    cli("eval", "--model-dir", tmp_path / "m", "--json", tmp_path / "eval.json")  # rebuilds the same model
    assert 0.0 <= json.loads((tmp_path / "eval.json").read_text())["accuracy"] <= 1.0

    run["model"]["d_model"] = 48
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(run))
    refused = cli("train", "--config", tmp_path / "run.yaml", "--model-dir", tmp_path / "m2", ok=False)
    assert refused.exit_code == 2 and "d_model: 36 there, 48 here" in refused.stderr
