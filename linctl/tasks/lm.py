"""Causal language modelling on `prepare wikitext` token streams, scored as fairseq's eval-lm scores them.

Training cuts the stream into blocks of ``tokens_per_sample`` (fairseq's ``--sample-break-mode none``):
every token is the target of the one before it, the stream's first token the target of ``<eos>``.
Evaluation scores every token of the split exactly once: a block brings ``tokens_per_sample -
context_window`` new tokens, each scored with the tokens before it in the block, and up to
``context_window`` tokens before the block as context only (eval-lm's ``--context-window``). The loss
adds the model's auxiliary loss (Primal's η·L_KSVD) to the summed NLL before dividing by the tokens, as
fairseq's criterion does; perplexity always comes from the NLL alone, and the auxiliary loss is reported
beside it.
"""

import functools
from pathlib import Path
from typing import Literal, Self

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import NonNegativeInt, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.atomic import sha256_file
from linctl.data.lm_stream import TokenStream
from linctl.errors import ConfigError, InputError
from linctl.metrics.perplexity import token_metrics
from linctl.models import MODELS
from linctl.models.base import LanguageModel, ModelConfig
from linctl.tasks.base import Batch, Task, TaskConfig, mask_tokens

KIND = "lm"  # the manifest kind `prepare wikitext` writes
IGNORED = -100  # target of a position that is not scored (context, padding)


class LmTask(Task):
    """Next-token cross-entropy over a token stream; perplexity with fairseq's eval-lm protocol."""

    class Config(TaskConfig):
        kind: Literal["lm"] = "lm"
        train_dir: Path | None = None  # a split folder of `linctl prepare wikitext` output
        eval_dir: Path | None = None  # None: no evaluation
        tokens_per_sample: PositiveInt | None = None  # block length; None: model.max_seq_length
        context_window: NonNegativeInt = 0  # evaluation: tokens of context before each block, not scored
        eval_tokens: PositiveInt | None = None  # evaluate on the first N tokens of the split only
        verify_shards: bool = True

        @model_validator(mode="after")
        def _window_fits(self) -> Self:
            if self.tokens_per_sample is not None and self.context_window >= self.tokens_per_sample:
                raise ValueError(
                    f"context_window ({self.context_window}) must be < tokens_per_sample "
                    f"({self.tokens_per_sample}): each block must score at least one new token"
                )
            return self

    cfg: Config

    def __init__(self, cfg: Config, model: ModelConfig, seed: int) -> None:
        if not issubclass(MODELS.cls(model), LanguageModel):
            raise ConfigError(f"task lm needs a causal language model (decoder), not {model.kind}")
        self.cfg, self.model_cfg, self.seed = cfg, model, seed

    @property
    def block(self) -> int:
        """Tokens per sample."""
        return self.cfg.tokens_per_sample or self.model_cfg.max_seq_length

    @functools.cached_property
    def _train(self) -> TokenStream:
        return self._open(self.cfg.train_dir, "task.train_dir")

    @functools.cached_property
    def _eval(self) -> TokenStream:
        return self._open(self.cfg.eval_dir, "task.eval_dir")

    def _open(self, folder: Path | None, key: str) -> TokenStream:
        stream, problems = self._inspect(folder, key)
        if stream is None or problems:
            raise InputError("\n".join(problems))
        return stream

    def _inspect(self, folder: Path | None, key: str) -> tuple[TokenStream | None, list[str]]:
        """Open ``folder``'s stream; return it (None if unreadable) and every mismatch with the model."""
        if folder is None:
            return None, [f"{key} is not set: give a split folder of `linctl prepare wikitext`"]
        if not Path(folder).is_dir():
            return None, [f"{key} {folder}: no such folder"]
        try:
            stream = TokenStream(folder, verify=self.cfg.verify_shards)
        except InputError as exc:
            return None, [f"{key}: {exc}"]
        problems = []
        vocab = self.model_cfg.vocab_size  # type: ignore[attr-defined]
        if stream.vocab_size != vocab:
            problems.append(
                f"{key} {folder}: the stream's vocabulary has {stream.vocab_size} tokens "
                f"({stream.vocab_file}) but model.vocab_size is {vocab}; set model.vocab_size: "
                f"{stream.vocab_size}"
            )
        if self.block > self.model_cfg.max_seq_length:
            problems.append(
                f"task.tokens_per_sample {self.block} is longer than model.max_seq_length "
                f"({self.model_cfg.max_seq_length})"
            )
        if self.cfg.context_window >= self.block:
            problems.append(
                f"task.context_window {self.cfg.context_window} must be < tokens_per_sample {self.block}"
            )
        return stream, problems

    def problems(self) -> list[str]:
        train, problems = self._inspect(self.cfg.train_dir, "task.train_dir")
        if self.cfg.eval_dir is None:
            return problems
        evaluation, more = self._inspect(self.cfg.eval_dir, "task.eval_dir")
        both = train is not None and evaluation is not None and not problems and not more
        if both and sha256_file(train.vocab_file) != sha256_file(evaluation.vocab_file):  # type: ignore[union-attr]
            more.append(
                f"task.eval_dir {self.cfg.eval_dir}: made with another vocabulary than task.train_dir "
                f"{self.cfg.train_dir}; prepare both splits in one `prepare wikitext` run"
            )
        return problems + list(dict.fromkeys(more))

    # Training: consecutive blocks of the stream.

    @functools.cached_property
    def train_lengths(self) -> np.ndarray:
        blocks = len(self._train.tokens) // self.block  # the last, partial block is left out
        return np.full(blocks, self.block, dtype=np.int64)

    def train_batch(self, indices: np.ndarray, index: int) -> Batch:
        stream, L = self._train, self.block
        starts = np.asarray(indices, dtype=np.int64) * L
        targets = np.stack([stream.tokens[s : s + L] for s in starts]).astype(np.int64)  # (B, L)
        before = np.array([stream.tokens[s - 1] if s else stream.eos_id for s in starts], dtype=np.int64)
        inputs = np.concatenate([before[:, None], targets[:, :-1]], axis=1)  # each token predicts the next
        return {"input_ids": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}

    # Evaluation: every token once, with up to context_window tokens of context before its block.

    @functools.cached_property
    def _windows(self) -> np.ndarray:
        """(start, first scored, end) of every evaluation block, as stream positions of targets."""
        if self.cfg.eval_dir is None:
            return np.zeros((0, 3), dtype=np.int64)
        total = len(self._eval.tokens)
        total = min(total, self.cfg.eval_tokens) if self.cfg.eval_tokens else total
        stride = self.block - self.cfg.context_window
        first = np.arange(0, total, stride, dtype=np.int64)
        return np.stack(
            [np.maximum(first - self.cfg.context_window, 0), first, np.minimum(first + stride, total)], 1
        )

    @property
    def eval_lengths(self) -> np.ndarray:
        return self._windows[:, 2] - self._windows[:, 0]

    def eval_batch(self, indices: np.ndarray, index: int) -> Batch:
        stream = self._eval
        rows = self._windows[np.asarray(indices, dtype=np.int64)]
        T = int((rows[:, 2] - rows[:, 0]).max())
        inputs = np.full((len(rows), T), stream.pad_id, dtype=np.int64)
        targets = np.full((len(rows), T), IGNORED, dtype=np.int64)
        for row, (start, scored, end) in enumerate(rows):
            tokens = stream.tokens[start:end].astype(np.int64)
            before = stream.tokens[start - 1] if start else stream.eos_id
            inputs[row, : end - start] = np.concatenate([[before], tokens[:-1]])
            targets[row, scored - start : end - start] = tokens[scored - start :]
        real = torch.arange(T)[None, :] < torch.from_numpy(rows[:, 2] - rows[:, 0])[:, None]  # (B, T)
        return {
            "input_ids": torch.from_numpy(inputs),
            "targets": torch.from_numpy(targets),
            "attention_mask": real,
        }

    def example_batch(self, batch_size: int) -> Batch:
        inputs = self.model_cfg.example_inputs(batch_size, self.block)
        vocab = self.model_cfg.vocab_size  # type: ignore[attr-defined]
        return {**inputs, "targets": torch.randint(0, vocab, (batch_size, self.block))}

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        out = model(batch["input_ids"], batch.get("attention_mask"))
        logits, targets = out.logits.float().flatten(0, 1), batch["targets"].flatten()  # (B·T, V), (B·T,)
        nll = F.cross_entropy(logits, targets, ignore_index=IGNORED, reduction="sum")
        scored = targets != IGNORED
        count = scored.sum()
        correct = ((logits.argmax(-1) == targets) & scored).sum()
        sums = {
            "loss_sum": nll.detach(),
            "correct": correct.detach(),
            "count": count.detach().float(),
            "aux_sum": out.aux_loss.detach(),
        }
        return (nll + out.aux_loss) / count.clamp(min=1), sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = sums.get("count", 0.0)
        metrics = token_metrics(sums.get("loss_sum", 0.0), sums.get("correct", 0.0), count)
        return metrics | {"aux_loss": sums.get("aux_sum", 0.0) / count if count else 0.0}

    def count_tokens(self, batch: Batch) -> tuple[int, int]:
        if "attention_mask" in batch:
            return mask_tokens(batch["attention_mask"])
        return batch["input_ids"].numel(), batch["input_ids"].numel()

    def ranking(self) -> tuple[str, bool]:
        return "ppl", False

    def files(self) -> dict[str, Path]:
        return {"vocab.txt": self._train.vocab_file}

    def protocol(self) -> str:
        """Say how perplexity was computed, to print beside the number."""
        window = self.cfg.context_window
        return (
            f"every token scored once; blocks of {self.block} tokens, each scoring {self.block - window} new "
            f"tokens with up to {window} tokens of context before the block (fairseq eval-lm "
            f"--tokens-per-sample {self.block} --context-window {window}); perplexity from the NLL alone"
        )
