"""Translation: teacher-forced label-smoothed cross-entropy on `prepare translation` shards, evaluated by
perplexity on the references and by BLEU and chrF (sacrebleu) of decoded, detokenized hypotheses.

The decoder reads ``<s> y`` and predicts ``y </s>``; the source is ``x </s>``. The loss is label-smoothed
cross-entropy (Szegedy et al.; ε = ``label_smoothing``) averaged over target tokens; perplexity comes from
the plain NLL. Generation decodes the evaluation split with ``decoding`` (beam 1: greedy), detokenizes
with the shards' tokenizer and scores against their reference texts; ``hypotheses_file`` keeps them, one
line per pair in the split's order.
"""

import functools
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from linctl.atomic import write_text_atomic
from linctl.data.translation import ParallelShards, SubwordTokenizer
from linctl.errors import ConfigError, InputError
from linctl.metrics.bleu import BleuTokenize, corpus_scores
from linctl.metrics.perplexity import token_metrics
from linctl.models import MODELS
from linctl.models.base import ModelConfig, Translator
from linctl.models.generate import DecodeOptions, Special, generate
from linctl.runtime.device import Precision
from linctl.tasks.base import Batch, Task, TaskConfig, mask_tokens, run_batches

IGNORED = -100  # target of a padded position


class TranslationTask(Task):
    """Label-smoothed NLL with teacher forcing; BLEU, chrF and perplexity at evaluation."""

    class Config(TaskConfig):
        kind: Literal["translation"] = "translation"
        train_dir: Path | None = None  # a split folder of `linctl prepare translation` (or wmt14)
        eval_dir: Path | None = None  # None: no evaluation
        eval_sentences: PositiveInt | None = None  # evaluate on the first N pairs only
        label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
        generate: bool = True  # decode the evaluation split for BLEU and chrF at each evaluation
        decoding: DecodeOptions = Field(default_factory=DecodeOptions)
        bleu_tokenize: BleuTokenize = "13a"
        hypotheses_file: Path | None = None  # where the decoded evaluation split goes, one line per pair
        verify_shards: bool = True

    cfg: Config

    def __init__(self, cfg: Config, model: ModelConfig, seed: int) -> None:
        if not issubclass(MODELS.cls(model), Translator) or not model.n_decoder_layers:  # type: ignore[attr-defined]
            raise ConfigError(
                f"task translation needs an encoder-decoder (seq2seq, decoder_layers ≥ 1), not {model.kind}"
            )
        self.cfg, self.model_cfg, self.seed = cfg, model, seed
        self.signatures: tuple[str, str] | None = None

    @functools.cached_property
    def _train(self) -> ParallelShards:
        return self._open(self.cfg.train_dir, "task.train_dir")

    @functools.cached_property
    def _eval(self) -> ParallelShards:
        return self._open(self.cfg.eval_dir, "task.eval_dir")

    def _open(self, folder: Path | None, key: str) -> ParallelShards:
        shards, problems = self._inspect(folder, key)
        if shards is None or problems:
            raise InputError("\n".join(problems))
        return shards

    def _inspect(self, folder: Path | None, key: str) -> tuple[ParallelShards | None, list[str]]:
        """Open ``folder``'s shards; return them (None if unreadable) and every mismatch with the model."""
        if folder is None:
            return None, [f"{key} is not set: give a split folder of `linctl prepare translation`"]
        if not Path(folder).is_dir():
            return None, [f"{key} {folder}: no such folder"]
        try:
            shards = ParallelShards(folder, verify=self.cfg.verify_shards)
        except InputError as exc:
            return None, [f"{key}: {exc}"]
        problems = []
        size, vocab = len(self._tokenizer_of(shards)), self.model_cfg.vocab_size  # type: ignore[attr-defined]
        if size != vocab:
            problems.append(
                f"{key} {folder}: the tokenizer has {size} tokens ({shards.tokenizer_file}) but "
                f"model.vocab_size is {vocab}; set model.vocab_size: {size}"
            )
        used = (
            len(shards)
            if key == "task.train_dir"
            else min(len(shards), self.cfg.eval_sentences or len(shards))
        )
        limits = (
            ("source", shards.source, "max_seq_length", self.model_cfg.max_seq_length),
            ("target", shards.target, "max_target_length", self.model_cfg.target_length),  # type: ignore[attr-defined]
        )
        for side, ragged, field, limit in limits:
            longest = int(ragged.lengths[:used].max(initial=0)) + 1  # </s> (or <s>) included
            if longest > limit:
                problems.append(
                    f"{key} {folder}: holds a {side} of {longest} tokens (</s> included) but model.{field} "
                    f"is {limit}; raise it, or prepare with a lower --max-length (train) or set "
                    "task.eval_sentences"
                )
        return shards, problems

    @staticmethod
    @functools.cache
    def _tokenizer_at(path: Path) -> SubwordTokenizer:
        return SubwordTokenizer(path)

    def _tokenizer_of(self, shards: ParallelShards) -> SubwordTokenizer:
        return self._tokenizer_at(shards.tokenizer_file)

    def problems(self) -> list[str]:
        train, problems = self._inspect(self.cfg.train_dir, "task.train_dir")
        if self.cfg.eval_dir is None:
            return problems
        evaluation, more = self._inspect(self.cfg.eval_dir, "task.eval_dir")
        if train is not None and evaluation is not None:
            ours, theirs = (s.manifest["options"]["tokenizer_sha256"] for s in (train, evaluation))
            if ours != theirs:
                more.append(
                    f"task.eval_dir {self.cfg.eval_dir}: made with another tokenizer than task.train_dir "
                    f"{self.cfg.train_dir}; prepare both splits in one run (or pass --tokenizer)"
                )
        return problems + list(dict.fromkeys(more))

    # Batches: source ``x </s>``, decoder input ``<s> y``, targets ``y </s>``.

    @property
    def train_lengths(self) -> np.ndarray:
        return np.maximum(self._train.source.lengths, self._train.target.lengths) + 1

    def train_batch(self, indices: np.ndarray, index: int) -> Batch:
        return self._batch(self._train, indices)

    @property
    def _eval_count(self) -> int:
        if self.cfg.eval_dir is None:
            return 0
        return min(len(self._eval), self.cfg.eval_sentences or len(self._eval))

    @property
    def eval_lengths(self) -> np.ndarray:
        if self.cfg.eval_dir is None:
            return np.zeros(0, dtype=np.int64)
        n = self._eval_count
        return np.maximum(self._eval.source.lengths[:n], self._eval.target.lengths[:n]) + 1

    def eval_batch(self, indices: np.ndarray, index: int) -> Batch:
        return self._batch(self._eval, indices)

    @staticmethod
    def _batch(shards: ParallelShards, indices: np.ndarray) -> Batch:
        rows = np.asarray(indices, dtype=np.int64)
        pad, bos, eos = shards.pad_id, shards.bos_id, shards.eos_id
        source = [np.append(shards.source.values[a:b], eos) for a, b in _spans(shards.source, rows)]
        target = [shards.target.values[a:b] for a, b in _spans(shards.target, rows)]
        S, T = max(len(s) for s in source), max(len(t) for t in target) + 1
        input_ids = np.full((len(rows), S), pad, dtype=np.int64)
        decoder_ids = np.full((len(rows), T), pad, dtype=np.int64)
        targets = np.full((len(rows), T), IGNORED, dtype=np.int64)
        for i, (src, tgt) in enumerate(zip(source, target, strict=True)):
            input_ids[i, : len(src)] = src
            decoder_ids[i, : len(tgt) + 1] = np.concatenate([[bos], tgt])
            targets[i, : len(tgt) + 1] = np.concatenate([tgt, [eos]])
        source_lengths = torch.tensor([len(s) for s in source])
        target_lengths = torch.tensor([len(t) + 1 for t in target])
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.arange(S)[None, :] < source_lengths[:, None],  # (B, S)
            "decoder_input_ids": torch.from_numpy(decoder_ids),
            "decoder_attention_mask": torch.arange(T)[None, :] < target_lengths[:, None],  # (B, T)
            "targets": torch.from_numpy(targets),
            "example_index": torch.from_numpy(rows),
        }

    def example_batch(self, batch_size: int) -> Batch:
        length = min(self.model_cfg.max_seq_length, self.model_cfg.target_length)  # type: ignore[attr-defined]
        inputs = self.model_cfg.example_inputs(batch_size, length)
        vocab = self.model_cfg.vocab_size  # type: ignore[attr-defined]
        return {**inputs, "targets": torch.randint(0, vocab, (batch_size, length))}

    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        out = model(
            batch["input_ids"],
            batch["decoder_input_ids"],
            batch.get("attention_mask"),
            batch.get("decoder_attention_mask"),
        )
        logits, targets = out.logits.float().flatten(0, 1), batch["targets"].flatten()  # (B·T, V), (B·T,)
        smoothed = F.cross_entropy(
            logits, targets, ignore_index=IGNORED, reduction="sum", label_smoothing=self.cfg.label_smoothing
        )
        nll = F.cross_entropy(logits, targets, ignore_index=IGNORED, reduction="sum")
        scored = targets != IGNORED
        count = scored.sum()
        correct = ((logits.argmax(-1) == targets) & scored).sum()
        sums = {
            "loss_sum": nll.detach(),
            "smoothed_sum": smoothed.detach(),
            "correct": correct.detach(),
            "count": count.detach().float(),
        }
        return (smoothed + out.aux_loss) / count.clamp(min=1), sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        count = sums.get("count", 0.0)
        metrics = token_metrics(sums.get("loss_sum", 0.0), sums.get("correct", 0.0), count)
        return metrics | {"smoothed_loss": sums.get("smoothed_sum", 0.0) / count if count else 0.0}

    def count_tokens(self, batch: Batch) -> tuple[int, int]:
        source, target = mask_tokens(batch["attention_mask"]), mask_tokens(batch["decoder_attention_mask"])
        return source[0] + target[0], source[1] + target[1]

    def ranking(self) -> tuple[str, bool]:
        return ("bleu", True) if self.cfg.generate else ("ppl", False)

    def files(self) -> dict[str, Path]:
        return {"tokenizer.json": self._train.tokenizer_file}

    # Generation.

    def translate(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision
    ) -> list[str]:
        """Return the detokenized translation of every evaluation pair, in the split's order."""
        shards = self._eval
        special = Special(shards.bos_id, shards.eos_id)
        opts = self.cfg.decoding

        def step(model: nn.Module, batch: Batch) -> tuple[list[int], list[list[int]]]:
            found = generate(model, batch["input_ids"], batch["attention_mask"], special, opts)  # type: ignore[arg-type]
            return batch["example_index"].tolist(), found

        hypotheses: list[list[int]] = [[] for _ in range(self._eval_count)]
        for indices, found in run_batches(
            model, device, precision, self.eval_lengths, batch_size, self.eval_batch, step
        ):
            for index, ids in zip(indices, found, strict=True):
                hypotheses[index] = ids
        return self._tokenizer_of(shards).decode(hypotheses)

    def evaluate_generation(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision
    ) -> dict[str, float]:
        if not self.cfg.generate:
            return {}
        hypotheses = self.translate(model, device, batch_size, precision)
        if self.cfg.hypotheses_file is not None:
            write_text_atomic(self.cfg.hypotheses_file, "".join(f"{line}\n" for line in hypotheses))
        scores = corpus_scores(hypotheses, self._eval.references(self._eval_count), self.cfg.bleu_tokenize)
        self.signatures = (scores.bleu_signature, scores.chrf_signature)
        return {"bleu": scores.bleu, "chrf": scores.chrf}

    def protocol(self) -> str:
        """Say how the metrics were computed: sacrebleu's signatures and the decoding."""
        opts = self.cfg.decoding
        how = "greedy" if opts.beam == 1 else f"beam {opts.beam}, length penalty {opts.length_penalty:g}"
        said = (
            f"ppl: teacher-forced on the references, per target token (</s> included); decoding: {how}, "
            f"max length {opts.max_len_a:g}·source + {opts.max_len_b}"
        )
        if self.signatures is not None:
            said += f"; BLEU sacrebleu {self.signatures[0]}; chrF {self.signatures[1]}"
        return said


def _spans(ragged, rows: np.ndarray) -> zip:
    """Return (start, end) in ``ragged.values`` of each row of ``rows``."""
    return zip(ragged.offsets[rows], ragged.offsets[rows + 1], strict=True)
