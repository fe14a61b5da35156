"""Masked language modelling on ``prepare mlm`` shards: static masks as stored, or dynamic masks."""

import functools
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor, nn

from linctl.atomic import sha256_file
from linctl.data.loader import MlmCollator
from linctl.data.ragged import Ragged
from linctl.data.shards import ShardSet
from linctl.errors import ConfigError, InputError
from linctl.metrics.perplexity import token_metrics
from linctl.models import MODELS
from linctl.models.base import MaskedLM, ModelConfig
from linctl.tasks.base import Batch, Task, TaskConfig, mask_tokens, open_shards, vocab_problems


class MlmTask(Task):
    """Cross-entropy of the masked tokens, weighted by ``masked_lm_weights`` (padding predictions: 0)."""

    class Config(TaskConfig):
        kind: Literal["mlm"] = "mlm"
        train_dir: Path | None = None  # a `prepare mlm` output folder
        eval_dir: Path | None = None  # None: no evaluation
        eval_examples: PositiveInt | None = None  # evaluate on the first N examples only
        verify_shards: bool = True  # check every shard's sha256 against the manifest

    # The model capability the objective uses, and the kinds that have it (for the error)
    needs: ClassVar[tuple[type, str]] = (MaskedLM, "an MLM head (encoder, funnel)")

    def __init__(self, cfg: Config, model: ModelConfig, seed: int) -> None:
        capability, which = self.needs
        if not issubclass(MODELS.cls(model), capability):
            raise ConfigError(f"task {cfg.kind} needs a model with {which}, not {model.kind}")
        self.cfg, self.model_cfg, self.seed = cfg, model, seed

    @functools.cached_property
    def _train(self) -> tuple[ShardSet, MlmCollator]:
        return self._open(self.cfg.train_dir, "task.train_dir")

    @functools.cached_property
    def _eval(self) -> tuple[ShardSet, MlmCollator]:
        return self._open(self.cfg.eval_dir, "task.eval_dir")

    def _open(self, folder: Path | None, key: str) -> tuple[ShardSet, MlmCollator]:
        shards, problems = self._inspect(folder, key)
        if key == "task.eval_dir" and shards is not None and not problems and self.cfg.train_dir is not None:
            problems = self._vocab_agrees(self._train[0], shards)
        if shards is None or problems:
            raise InputError("\n".join(problems))
        return shards, MlmCollator.for_shards(shards.manifest, self.seed)

    def _inspect(self, folder: Path | None, key: str) -> tuple[ShardSet | None, list[str]]:
        """Open ``folder``'s shards; return them (None if unreadable) and every mismatch with the model."""
        shards, problems = open_shards(folder, key, "mlm", self.cfg.verify_shards)
        if shards is None:
            return None, problems
        opts: dict[str, Any] = shards.manifest["options"]
        model = self.model_cfg
        if opts["max_seq_length"] != model.max_seq_length:
            problems.append(
                f"{key} {folder}: shards were made with max_seq_length {opts['max_seq_length']} but "
                f"model.max_seq_length is {model.max_seq_length}; use shards of the model's length"
            )
        if "input_ids" not in shards.features:
            problems.append(f"{key} {folder}: shards have no input_ids column (they have {shards.features})")
        return shards, problems + vocab_problems(opts, f"{key} {folder}", model.vocab_size)  # type: ignore[attr-defined]

    def _vocab_agrees(self, train: ShardSet, evaluation: ShardSet) -> list[str]:
        if _vocab_digest(train) == _vocab_digest(evaluation):
            return []
        return [
            f"task.eval_dir {self.cfg.eval_dir}: shards use another vocabulary than task.train_dir "
            f"{self.cfg.train_dir}; prepare both with the same --vocab-file and --do-lower-case"
        ]

    def problems(self) -> list[str]:
        train, problems = self._inspect(self.cfg.train_dir, "task.train_dir")
        if self.cfg.eval_dir is None:
            return problems
        evaluation, more = self._inspect(self.cfg.eval_dir, "task.eval_dir")
        if train is not None and evaluation is not None and not problems and not more:
            more = self._vocab_agrees(train, evaluation)
        return problems + more

    def example_batch(self, batch_size: int) -> Batch:
        T, P = self.model_cfg.max_seq_length, self._max_predictions()
        vocab = self.model_cfg.vocab_size  # type: ignore[attr-defined]
        return {
            **self.model_cfg.example_inputs(batch_size, T, lengths=[T] * batch_size),  # (B, T) each
            "masked_lm_positions": torch.randint(0, T, (batch_size, P)),  # (B, P)
            "masked_lm_ids": torch.randint(0, vocab, (batch_size, P)),
            "masked_lm_weights": torch.ones(batch_size, P),
        }

    def _max_predictions(self) -> int:
        """Masked positions per example: the shards' max_predictions_per_seq, else BERT's 15% of T."""
        for folder in (self.cfg.train_dir, self.cfg.eval_dir):
            manifest = Path(folder or "") / "manifest.json"
            if folder is not None and manifest.is_file():
                predictions = (
                    json.loads(manifest.read_text()).get("options", {}).get("max_predictions_per_seq")
                )
                if predictions:
                    return int(predictions)
        return max(1, round(0.15 * self.model_cfg.max_seq_length))

    @functools.cached_property
    def train_lengths(self) -> np.ndarray:
        return _lengths(self._train[0])

    @functools.cached_property
    def eval_lengths(self) -> np.ndarray:
        if self.cfg.eval_dir is None:
            return np.zeros(0, dtype=np.int64)
        lengths = _lengths(self._eval[0])
        return lengths[: self.cfg.eval_examples] if self.cfg.eval_examples else lengths

    def train_batch(self, indices: np.ndarray, index: int) -> Batch:
        shards, collate = self._train
        return collate(shards.take(indices), index)

    def eval_batch(self, indices: np.ndarray, index: int) -> Batch:
        shards, collate = self._eval
        return collate(shards.take(indices), index)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = model.mlm_logits(out.hidden, batch["masked_lm_positions"]).float()  # (B, P, V)
        labels = batch["masked_lm_ids"].flatten()  # (B·P,)
        weights = batch["masked_lm_weights"].flatten()
        losses = F.cross_entropy(logits.flatten(0, 1), labels, reduction="none") * weights
        count = weights.sum()
        correct = ((logits.argmax(-1).flatten() == labels) * weights).sum()
        sums = {"loss_sum": losses.sum().detach(), "correct": correct.detach(), "count": count.detach()}
        # the auxiliary loss is on the scale of a summed loss: averaged over the same tokens
        return (losses.sum() + out.aux_loss) / count.clamp(min=1.0), sums

    def count_tokens(self, batch: Batch) -> tuple[int, int]:
        return mask_tokens(batch["attention_mask"])

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        return token_metrics(sums.get("loss_sum", 0.0), sums.get("correct", 0.0), sums.get("count", 0.0))

    def ranking(self) -> tuple[str, bool]:
        return "ppl", False

    def files(self) -> dict[str, Path]:
        opts = self._train[0].manifest["options"]
        return {"vocab.txt": Path(opts["vocab_file"])}


def _lengths(shards: ShardSet) -> np.ndarray:
    return Ragged.from_arrow(shards.table.column("input_ids")).lengths


def _vocab_digest(shards: ShardSet) -> tuple[str, bool]:
    opts = shards.manifest["options"]
    return sha256_file(Path(opts["vocab_file"])), opts["do_lower_case"]
