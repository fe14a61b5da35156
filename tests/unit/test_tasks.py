"""The tasks (MLM, classification) through their public methods: the loss of a hand-made batch against
torch.nn.functional, every data problem listed at once, evaluation metrics as the sums of their batches,
training batches as a pure function of (seed, index)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linctl.config.load import load_config
from linctl.data.loader import eval_batches
from linctl.errors import InputError
from linctl.models import MODELS
from linctl.tasks import TASKS, Task
from linctl.train.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")
V, T = 211, 16  # the tiny shards' vocabulary and length


def build(family: str, *overrides: str, seed: int = 0) -> tuple[Task, torch.nn.Module]:
    """The task of configs/FAMILY/tiny.yaml and its model in eval mode (no dropout), both seeded."""
    cfg = load_config(REPO / "configs" / family / "tiny.yaml", RunConfig, overrides)
    torch.manual_seed(seed)
    return TASKS.build(cfg.task, cfg.model, seed), MODELS.build(cfg.model).eval()


# The one place these tests use the model families' forward and heads, to compute the logits by hand.
def mlm_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    hidden = model(batch["input_ids"], batch["attention_mask"]).hidden
    return model.mlm_logits(hidden, batch["masked_lm_positions"])


def class_logits(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model.classify(model(batch["input_ids"], batch["attention_mask"], batch["segment_ids"]).hidden)


def metrics_of(task: Task, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """The task's loss of ``batch`` and the metrics of that batch alone."""
    with torch.no_grad():
        loss, sums = task.loss(model, batch)
    return loss, task.summarize({key: float(value) for key, value in sums.items()})


def summed(task: Task, model: torch.nn.Module, batch_size: int) -> dict[str, float]:
    """Summarize the sums of every evaluation batch, gathered by hand."""
    sums: dict[str, float] = {}
    with torch.no_grad():
        for index, indices in enumerate(eval_batches(task.eval_lengths, batch_size)):
            for key, value in task.loss(model, task.eval_batch(indices, index))[1].items():
                sums[key] = sums.get(key, 0.0) + float(value)
    return task.summarize(sums)


def same_batches(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


# --- MLM ---------------------------------------------------------------------------------------------


def mlm(shards: dict[str, Path], *overrides: str, seed: int = 0) -> tuple[Task, torch.nn.Module]:
    dirs = [f"task.train_dir={shards['train']}", f"task.eval_dir={shards['eval']}"]
    return build("mlm", *dirs, *overrides, seed=seed)


def mlm_batch() -> dict[str, torch.Tensor]:
    """Three sequences of 16, 11 and 6 tokens with 3, 2 and 1 predictions (the rest padding, weight 0)."""
    g = torch.Generator().manual_seed(3)
    return {
        "input_ids": torch.randint(5, V, (3, T), generator=g),  # (B, T)
        "attention_mask": torch.arange(T) < torch.tensor([[16], [11], [6]]),
        "masked_lm_positions": torch.tensor([[1, 7, 14], [2, 9, 0], [4, 0, 0]]),  # (B, P)
        "masked_lm_ids": torch.randint(5, V, (3, 3), generator=g),
        "masked_lm_weights": torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
    }


def test_mlm_loss_is_the_cross_entropy_of_the_weighted_predictions(tiny_shards):
    task, model = mlm(tiny_shards)
    batch = mlm_batch()
    loss, metrics = metrics_of(task, model, batch)
    real = batch["masked_lm_weights"] > 0
    with torch.no_grad():
        logits = mlm_logits(model, batch)[real]  # (6, V)
    labels = batch["masked_lm_ids"][real]
    expected = F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss, expected)
    assert metrics["loss"] == pytest.approx(float(expected), rel=1e-6)
    assert metrics["ppl"] == pytest.approx(float(expected.exp()), rel=1e-6)
    assert metrics["accuracy"] == float((logits.argmax(-1) == labels).float().mean())

    padded = {**batch, "masked_lm_ids": batch["masked_lm_ids"].clone()}
    padded["masked_lm_ids"][~real] = 7  # what padding predictions hold does not count
    padded["masked_lm_positions"] = torch.where(real, batch["masked_lm_positions"], 3)
    again, again_metrics = metrics_of(task, model, padded)
    torch.testing.assert_close(again, loss)
    assert again_metrics == pytest.approx(metrics)


def test_mlm_evaluation_is_the_summary_of_its_batch_sums(tiny_shards):
    task, model = mlm(tiny_shards, "task.eval_examples=23")
    model.train()
    found = task.evaluate(model, CPU, 5, "fp32")
    assert model.training  # evaluation puts the model back in the mode it found
    model.eval()
    assert set(found) == {"loss", "ppl", "accuracy"}
    assert found == pytest.approx(summed(task, model, 5), rel=1e-6)
    # sums, not means of batch means: the batch size changes the loss only by rounding (other paddings)
    assert task.evaluate(model, CPU, 23, "fp32")["loss"] == pytest.approx(found["loss"], rel=1e-5)


def test_mlm_training_batches_are_a_pure_function_of_seed_and_index(tiny_shards):
    task, _ = mlm(tiny_shards)
    indices = np.array([5, 17, 2, 40, 33, 8, 21, 12, 3, 30, 11, 27])
    first = task.train_batch(indices, 3)
    task.train_batch(np.array([1, 2, 3]), 9)  # other batches in between change nothing
    assert same_batches(task.train_batch(indices, 3), first)
    assert same_batches(mlm(tiny_shards)[0].train_batch(indices, 3), first)  # nor another instance
    # the training shards are unmasked: masks are drawn per (seed, index)
    assert not torch.equal(task.train_batch(indices, 4)["masked_lm_positions"], first["masked_lm_positions"])
    reseeded = mlm(tiny_shards, seed=1)[0].train_batch(indices, 3)
    assert not torch.equal(reseeded["masked_lm_positions"], first["masked_lm_positions"])
    assert torch.equal(reseeded["attention_mask"], first["attention_mask"])  # of the same examples


@pytest.fixture(scope="module")
def odd_mlm(tmp_path_factory, tiny_shards, tiny_mlm_shards) -> dict[str, Path]:
    """Evaluation shards with another vocabulary of the same size, and shards whose vocabulary is gone."""
    root = tmp_path_factory.mktemp("odd-mlm")
    pieces = tiny_shards["vocab"].read_text(encoding="utf-8").splitlines()
    pieces[-2], pieces[-1] = pieces[-1], pieces[-2]  # same size, other ids
    (root / "other-vocab.txt").write_text("\n".join(pieces) + "\n", encoding="utf-8")
    other = tiny_mlm_shards(root / "other", root / "other-vocab.txt", slice(400, 440))
    shutil.copy(tiny_shards["vocab"], root / "vocab-to-lose.txt")
    lost = tiny_mlm_shards(root / "lost", root / "vocab-to-lose.txt", slice(400, 440))
    (root / "vocab-to-lose.txt").unlink()
    return {"other": other, "lost": lost, "lost_vocab": root / "vocab-to-lose.txt"}


def test_mlm_problems_list_every_mismatch_of_data_and_model(tiny_shards):
    assert mlm(tiny_shards)[0].problems() == []
    task, _ = mlm(tiny_shards, "model.max_seq_length=32", "model.vocab_size=300")
    problems = task.problems()
    assert len(problems) == 4, problems
    for (length, vocab), key in zip([problems[:2], problems[2:]], ("train", "eval"), strict=True):
        where = f"task.{key}_dir {tiny_shards[key]}: "
        assert length.startswith(where) and "max_seq_length 16 but model.max_seq_length is 32" in length
        assert vocab.startswith(where) and f"vocabulary of {V} tokens" in vocab
        assert "model.vocab_size is 300; set model.vocab_size: 211" in vocab
    with pytest.raises(InputError) as err:
        task.check()
    assert str(err.value).splitlines() == problems


def test_mlm_problems_of_folders_unset_missing_or_of_another_kind(tiny_shards, tmp_path):
    task, _ = mlm(tiny_shards, "task.train_dir=null", f"task.eval_dir={tmp_path / 'absent'}")
    assert task.problems() == [
        "task.train_dir is not set: give the output folder of `linctl prepare mlm`",
        f"task.eval_dir {tmp_path / 'absent'}: no such folder",
    ]
    vocab_dir = tiny_shards["vocab"].parent  # a `prepare vocab` folder: vocab.txt, no shards
    (problem,) = mlm(tiny_shards, f"task.train_dir={vocab_dir}", "task.eval_dir=null")[0].problems()
    assert problem == f"task.train_dir {vocab_dir}: holds 'vocab' output, not `prepare mlm` shards"
    (tmp_path / "plain").mkdir()
    (problem,) = mlm(tiny_shards, f"task.train_dir={tmp_path / 'plain'}", "task.eval_dir=null")[0].problems()
    assert problem.startswith("task.train_dir: ") and "manifest.json" in problem


def test_mlm_problems_of_the_shards_vocabulary(tiny_shards, odd_mlm):
    (other,) = mlm(tiny_shards, f"task.eval_dir={odd_mlm['other']}")[0].problems()
    assert other.startswith(f"task.eval_dir {odd_mlm['other']}: shards use another vocabulary")
    assert f"task.train_dir {tiny_shards['train']}" in other
    (lost,) = mlm(tiny_shards, f"task.eval_dir={odd_mlm['lost']}")[0].problems()
    assert lost == f"task.eval_dir {odd_mlm['lost']}: the shards' vocabulary {odd_mlm['lost_vocab']} is gone"


# --- classification ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glue(tmp_path_factory, data_dir, cli, tiny_shards) -> Path:
    """SST-2 (train 30, dev 20, test 10 sentences) and STS-B (train 23, dev 15 pairs) with the tiny
    vocabulary, cut at 16 tokens: one folder per task, one per split inside."""
    root = tmp_path_factory.mktemp("glue")
    cuts = {
        "SST-2": {"train.tsv": 31, "dev.tsv": 21, "test.tsv": 11},  # a header line, then sentences
        "STS-B": {"sts-train.csv": 23, "sts-dev.csv": 15},
    }
    for task, files in cuts.items():
        source = root / "source" / task
        source.mkdir(parents=True)
        for name, count in files.items():
            lines = (data_dir / "glue" / task / name).read_text(encoding="utf-8").splitlines()[:count]
            (source / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        cli("prepare", "glue", "--task", task, "--input", source, "--vocab-file", tiny_shards["vocab"],
            "--do-lower-case", "--max-seq-length", T, "--output-dir", root / task)  # fmt: skip
    return root


def classifier(glue: Path, task: str = "SST-2", *overrides: str) -> tuple[Task, torch.nn.Module]:
    dirs = [f"task.train_dir={glue / task / 'train'}", f"task.eval_dir={glue / task / 'dev'}"]
    sizes = [f"model.vocab_size={V}", f"model.max_seq_length={T}"]
    return build("glue", *dirs, *sizes, *overrides)


def class_batch(labels: list) -> dict[str, torch.Tensor]:
    """Three pairs of 11, 8 and 5 tokens (the second sentence from position 4), padded to 11."""
    g = torch.Generator().manual_seed(4)
    return {
        "input_ids": torch.randint(5, V, (3, 11), generator=g),  # (B, T)
        "segment_ids": (torch.arange(11) >= 4).long().expand(3, 11),
        "attention_mask": torch.arange(11) < torch.tensor([[11], [8], [5]]),
        "labels": torch.tensor(labels),  # (B,)
    }


def test_classification_loss_is_the_cross_entropy_of_the_labels(glue):
    task, model = classifier(glue)
    batch = class_batch([1, 0, 1])
    loss, metrics = metrics_of(task, model, batch)
    with torch.no_grad():
        logits = class_logits(model, batch)  # (B, 2)
    expected = F.cross_entropy(logits, batch["labels"])
    torch.testing.assert_close(loss, expected)
    assert metrics == pytest.approx(
        {"loss": float(expected), "accuracy": float((logits.argmax(-1) == batch["labels"]).float().mean())}
    )


def test_regression_loss_is_the_mean_square_error_of_the_scores(glue):
    task, model = classifier(glue, "STS-B", "model.num_labels=1")
    batch = class_batch([0.5, 3.25, 4.75])
    loss, metrics = metrics_of(task, model, batch)
    with torch.no_grad():
        scores = class_logits(model, batch)[:, 0]  # (B,)
    expected = F.mse_loss(scores, batch["labels"])
    torch.testing.assert_close(loss, expected)
    assert metrics == pytest.approx({"loss": float(expected)})  # no accuracy for a score


@pytest.mark.parametrize(
    ("name", "labels", "metrics"), [("SST-2", 2, {"accuracy"}), ("STS-B", 1, {"pearson", "spearman"})]
)
def test_classification_evaluation_agrees_with_the_summary_of_its_batch_sums(glue, name, labels, metrics):
    task, model = classifier(glue, name, f"model.num_labels={labels}")
    found = task.evaluate(model, CPU, 7, "fp32")
    assert set(found) == {"loss", *metrics}  # the task's GLUE metrics besides the summary's
    by_hand = summed(task, model, 7)
    assert {key: found[key] for key in by_hand} == pytest.approx(by_hand, rel=1e-6)
    # Rank correlations of an untrained model's near-equal scores move with rounding; the loss does not.
    assert task.evaluate(model, CPU, 20, "fp32")["loss"] == pytest.approx(found["loss"], rel=1e-5)


def test_classification_batches_are_a_pure_function_of_the_examples(glue):
    task, _ = classifier(glue)
    indices = np.array([4, 0, 29, 13, 7])
    first = task.train_batch(indices, 0)
    assert first["input_ids"].shape[0] == len(first["labels"]) == 5
    task.train_batch(np.array([1, 2]), 1)
    assert same_batches(task.train_batch(indices, 0), first)
    assert same_batches(task.train_batch(indices, 6), first)  # nothing is drawn at random
    assert same_batches(classifier(glue)[0].train_batch(indices, 0), first)


def test_classification_problems_list_every_mismatch_of_data_and_model(glue, tiny_shards, tmp_path):
    assert classifier(glue)[0].problems() == []
    train, test = glue / "SST-2" / "train", glue / "SST-2" / "test"
    more = f"task.more_eval_dirs=[{tiny_shards['eval']}, {tmp_path / 'absent'}]"
    overrides = [f"task.eval_dir={test}", more, "model.num_labels=3", "model.vocab_size=300"]
    task, _ = build("glue", f"task.train_dir={train}", *overrides, "model.max_seq_length=8")
    problems = task.problems()
    assert len(problems) == 9, problems
    for where, found in (
        (f"task.train_dir {train}: ", problems[:3]),
        (f"task.eval_dir {test}: ", problems[3:7]),
    ):
        assert all(line.startswith(where) for line in found)
        assert "examples are up to 16 tokens but model.max_seq_length is 8" in found[-3]
        assert "SST-2 has 2 labels but model.num_labels is 3; set model.num_labels: 2" in found[-2]
        assert "model.vocab_size is 300" in found[-1]
    assert "the test split has no labels" in problems[3]
    assert problems[7:] == [
        f"task.more_eval_dirs {tiny_shards['eval']}: holds 'mlm' output, not `prepare glue` shards",
        f"task.more_eval_dirs {tmp_path / 'absent'}: no such folder",
    ]
