"""Sentence (pair) classification and regression on `prepare glue` shards: cross-entropy or MSE,
scored with the task's GLUE metrics."""

import functools
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from linctl.data.ragged import Ragged
from linctl.data.shards import ShardSet
from linctl.data.tokenizer import load_vocab
from linctl.errors import ConfigError, InputError
from linctl.metrics.glue import TASK_METRICS, glue_metrics, task_name
from linctl.models import MODELS
from linctl.models.base import Classifier, ModelConfig
from linctl.runtime.device import Precision
from linctl.tasks.base import (
    Batch,
    MakeBatch,
    Task,
    TaskConfig,
    mask_tokens,
    open_shards,
    run_batches,
    vocab_problems,
)

KIND = "glue"  # the manifest kind `prepare glue` writes


class ClassificationTask(Task):
    """Labels from the [CLS] state: cross-entropy over ``num_labels`` classes, or MSE for one score."""

    class Config(TaskConfig):
        kind: Literal["classification"] = "classification"
        train_dir: Path | None = None  # a split folder of `linctl prepare glue` output
        eval_dir: Path | None = None  # None: no evaluation
        more_eval_dirs: list[Path] = Field(default_factory=list)  # more splits scored: MNLI dev_mismatched
        eval_examples: PositiveInt | None = None  # evaluate on the first N examples only
        verify_shards: bool = True

    def __init__(self, cfg: Config, model: ModelConfig, seed: int) -> None:
        if not issubclass(MODELS.cls(model), Classifier):
            raise ConfigError(
                f"task classification needs a model with a classifier head (classifier), not {model.kind}"
            )
        self.cfg, self.model_cfg, self.seed = cfg, model, seed

    @functools.cached_property
    def _train(self) -> ShardSet:
        return self._open(self.cfg.train_dir, "task.train_dir")

    @functools.cached_property
    def _eval(self) -> ShardSet:
        return self._open(self.cfg.eval_dir, "task.eval_dir")

    def _open(self, folder: Path | None, key: str) -> ShardSet:
        shards, problems = self._inspect(folder, key)
        if shards is None or problems:
            raise InputError("\n".join(problems))
        return shards

    def _inspect(
        self, folder: Path | None, key: str, labels: bool = True
    ) -> tuple[ShardSet | None, list[str]]:
        """Open ``folder``'s shards; return them (None if unreadable) and every mismatch with the model."""
        shards, problems = open_shards(folder, key, KIND, self.cfg.verify_shards)
        if shards is None:
            return None, problems
        opts: dict[str, Any] = shards.manifest["options"]
        model = self.model_cfg
        if labels and "labels" not in shards.features:
            problems.append(
                f"{key} {folder}: the {opts['split']} split has no labels (a test set: use --predict)"
            )
        if opts["max_seq_length"] > model.max_seq_length:
            problems.append(
                f"{key} {folder}: examples are up to {opts['max_seq_length']} tokens but "
                f"model.max_seq_length is {model.max_seq_length}; prepare with --max-seq-length "
                f"{model.max_seq_length} or less"
            )
        if opts["num_labels"] != model.num_labels:  # type: ignore[attr-defined]
            what = "a regression score" if opts["regression"] else f"{opts['num_labels']} labels"
            problems.append(
                f"{key} {folder}: {opts['task']} has {what} but model.num_labels is "
                f"{model.num_labels}; set model.num_labels: {opts['num_labels']}"  # type: ignore[attr-defined]
            )
        return shards, problems + vocab_problems(opts, f"{key} {folder}", model.vocab_size)  # type: ignore[attr-defined]

    def problems(self) -> list[str]:
        _, problems = self._inspect(self.cfg.train_dir, "task.train_dir")
        if self.cfg.eval_dir is not None:
            problems += self._inspect(self.cfg.eval_dir, "task.eval_dir")[1]
        for folder in self.cfg.more_eval_dirs:
            problems += self._inspect(folder, "task.more_eval_dirs")[1]
        return problems

    @property
    def regression(self) -> bool:
        return self.model_cfg.num_labels == 1  # type: ignore[attr-defined]

    @functools.cached_property
    def train_lengths(self) -> np.ndarray:
        return Ragged.from_arrow(self._train.table.column("input_ids")).lengths

    @functools.cached_property
    def eval_lengths(self) -> np.ndarray:
        if self.cfg.eval_dir is None:
            return np.zeros(0, dtype=np.int64)
        lengths = Ragged.from_arrow(self._eval.table.column("input_ids")).lengths
        return lengths[: self.cfg.eval_examples] if self.cfg.eval_examples else lengths

    @functools.cached_property
    def _pad_id(self) -> int:
        opts = self._train.manifest["options"] if self.cfg.train_dir else self._eval.manifest["options"]
        return load_vocab(Path(opts["vocab_file"]), opts["do_lower_case"]).pad_id

    def train_batch(self, indices: np.ndarray, index: int) -> Batch:
        return _collate(self._train, indices, self.regression, self._pad_id)

    def eval_batch(self, indices: np.ndarray, index: int) -> Batch:
        return _collate(self._eval, indices, self.regression, self._pad_id)

    def example_batch(self, batch_size: int) -> Batch:
        T = self.model_cfg.max_seq_length
        labels = torch.rand(batch_size) if self.regression else torch.randint(0, 2, (batch_size,))
        inputs = self.model_cfg.example_inputs(batch_size, T, lengths=[T] * batch_size)  # (B, T) each
        return {"segment_ids": torch.zeros(batch_size, T, dtype=torch.long), **inputs, "labels": labels}

    def logits(self, model: nn.Module, batch: Batch) -> Tensor:
        """Return (B, num_labels) outputs of ``model`` on ``batch``."""
        return self._forward(model, batch)[0]

    def _forward(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
        """Return the (B, num_labels) outputs and the model's auxiliary loss."""
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "segment_ids")}
        out = model(**inputs)
        return model.classify(out.hidden).float(), out.aux_loss

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits, aux_loss = self._forward(model, batch)
        loss, sums = self._score(logits, batch["labels"])
        return loss + aux_loss / len(batch["labels"]), sums  # the auxiliary loss is on a summed scale

    def count_tokens(self, batch: Batch) -> tuple[int, int]:
        return mask_tokens(batch["attention_mask"])

    def _score(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.regression:
            losses = F.mse_loss(logits[:, 0], labels.float(), reduction="none")
            correct = torch.zeros(())
        else:
            losses = F.cross_entropy(logits, labels, reduction="none")
            correct = (logits.argmax(-1) == labels).sum()
        count = torch.tensor(float(len(labels)))
        sums = {"loss_sum": losses.sum().detach(), "correct": correct.detach(), "count": count}
        return losses.mean(), sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        summary = {"loss": sums.get("loss_sum", 0.0) / count}
        if not self.regression:
            summary["accuracy"] = sums.get("correct", 0.0) / count
        return summary

    def more_eval_splits(self) -> list[tuple[str, np.ndarray, MakeBatch]]:
        """``more_eval_dirs``, each under its split's name (MNLI ``dev_mismatched``)."""
        splits = []
        for folder in self.cfg.more_eval_dirs:
            shards = self._open(folder, "task.more_eval_dirs")
            lengths = Ragged.from_arrow(shards.table.column("input_ids")).lengths[: self.cfg.eval_examples]
            splits.append((shards.manifest["options"]["split"], lengths, self._batches_of(shards)))
        return splits

    def _batches_of(self, shards: ShardSet) -> MakeBatch:
        return lambda indices, index: _collate(shards, indices, self.regression, self._pad_id)

    def score(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision,
        lengths: np.ndarray, make_batch: MakeBatch,
    ) -> dict[str, float]:  # fmt: skip
        """The loss and the task's GLUE metrics, computed from every prediction of the split."""

        def step(model: nn.Module, batch: Batch) -> tuple[float, Tensor, Tensor]:
            logits = self.logits(model, batch)
            _, sums = self._score(logits, batch["labels"])
            found = logits[:, 0] if self.regression else logits.argmax(-1)
            return float(sums["loss_sum"]), found, batch["labels"]

        scored = run_batches(model, device, precision, lengths, batch_size, make_batch, step)
        found = torch.cat([predictions for _, predictions, _ in scored]).cpu().numpy()
        truth = torch.cat([labels for _, _, labels in scored]).cpu().numpy()
        loss_sum = sum(loss for loss, _, _ in scored)
        task = self._eval.manifest["options"]["task"]
        return {"loss": loss_sum / len(truth), **glue_metrics(task, found, truth)}

    def ranking(self) -> tuple[str, bool]:
        opts = self._eval.manifest["options"]
        return TASK_METRICS[task_name(opts["task"])][0], True

    def protocol(self) -> str:
        """Name what was scored: the GLUE task and split, and how many of its examples."""
        opts = self._eval.manifest["options"]
        scored, every = len(self.eval_lengths), self._eval.table.num_rows
        examples = f"{every:,} examples" if scored == every else f"the first {scored:,} of {every:,} examples"
        return f"GLUE {opts['task']} {opts['split']}, {examples}"

    def predict(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision, folder: Path
    ) -> list[tuple[int, str]]:
        """Return (GLUE index, prediction) for every example of a split folder, labelled or not:
        label names for classes, scores for a regression, as GLUE's submission files hold them."""
        shards, problems = self._inspect(folder, "--predict", labels=False)
        if shards is None or problems:
            raise InputError("\n".join(problems))
        names = shards.manifest["options"]["label_names"]
        lengths = Ragged.from_arrow(shards.table.column("input_ids")).lengths
        index = torch.from_numpy(shards.table.column("index").to_numpy().astype(np.int64))  # GLUE's

        def make_batch(indices: np.ndarray, number: int) -> Batch:
            batch = _collate(shards, indices, self.regression, self._pad_id)
            return batch | {"index": index[torch.from_numpy(np.asarray(indices, dtype=np.int64))]}

        def step(model: nn.Module, batch: Batch) -> list[tuple[int, str]]:
            logits = self.logits(model, batch)
            if self.regression:
                shown = [f"{score:.3f}" for score in logits[:, 0].tolist()]
            else:
                shown = [names[i] for i in logits.argmax(-1).tolist()]
            return list(zip(batch["index"].tolist(), shown, strict=True))

        predicted = run_batches(model, device, precision, lengths, batch_size, make_batch, step)
        return sorted(row for rows in predicted for row in rows)

    def files(self) -> dict[str, Path]:
        return {"vocab.txt": Path(self._train.manifest["options"]["vocab_file"])}


def _collate(shards: ShardSet, indices: np.ndarray, regression: bool, pad_id: int) -> Batch:
    """Pad (B, T) token and segment ids to the batch's longest example; labels (B,)."""
    rows = shards.table.take(np.asarray(indices, dtype=np.int64))
    ids, segments = (Ragged.from_arrow(rows.column(name)) for name in ("input_ids", "segment_ids"))
    real = Ragged(np.ones(len(ids.values), dtype=bool), ids.offsets)
    batch = {
        "input_ids": torch.from_numpy(ids.padded(pad_id).astype(np.int64)),  # (B, T)
        "segment_ids": torch.from_numpy(segments.padded(0).astype(np.int64)),
        "attention_mask": torch.from_numpy(real.padded(False)),
    }
    if "labels" in rows.column_names:  # test sets have none
        labels = rows.column("labels").to_numpy()
        batch["labels"] = torch.from_numpy(labels.astype(np.float32 if regression else np.int64))  # (B,)
    return batch
