"""Batches for training: pad MLM examples and, for unmasked shards, mask them dynamically."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linctl.data.mlm import Masking
from linctl.data.ragged import Ragged
from linctl.data.tokenizer import load_vocab


@dataclass(frozen=True)
class MlmCollator:
    """Turn examples (one Ragged per feature, as ``ShardSet.take`` gives) into padded tensors.

    Shards written with static masks are padded as they are. Unmasked shards (``--disable-masking``)
    are masked here with a generator seeded by ``(seed, step)``: each step gets fresh masks, and a
    resumed run gets the same masks as an uninterrupted one.
    """

    masking: Masking
    pad_id: int
    seed: int = 0

    @classmethod
    def for_shards(cls, manifest: Mapping[str, Any], seed: int = 0) -> "MlmCollator":
        """Build the collator that matches the options recorded in an MLM shard folder's manifest."""
        opts = manifest["options"]
        vocab = load_vocab(Path(opts["vocab_file"]), opts["do_lower_case"])
        separator = (
            [vocab.id(opts["document_separator_token"])] if opts["allow_cross_document_examples"] else []
        )
        masking = Masking.for_vocab(
            vocab, opts["masked_lm_prob"], opts["max_predictions_per_seq"], opts["mask_whole_word"], separator
        )
        return cls(masking, vocab.pad_id, seed)

    def __call__(self, batch: Mapping[str, Ragged], step: int) -> dict[str, torch.Tensor]:
        """Return input_ids and attention_mask (B, T) and masked_lm_* (B, P), P = max_predictions."""
        if "masked_lm_positions" in batch:
            inputs, positions, labels = (
                batch["input_ids"],
                batch["masked_lm_positions"],
                batch["masked_lm_ids"].values,
            )
        else:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(step,)))
            inputs, positions, labels = self.masking(batch["input_ids"], rng)
        width = self.masking.max_predictions
        real = Ragged(np.ones(len(positions.values), dtype=np.float32), positions.offsets)
        real_tokens = Ragged(np.ones(len(inputs.values), dtype=bool), inputs.offsets)
        return {
            "input_ids": torch.from_numpy(inputs.padded(self.pad_id).astype(np.int64)),  # (B, T)
            "attention_mask": torch.from_numpy(real_tokens.padded(False)),
            "masked_lm_positions": torch.from_numpy(positions.padded(0, width).astype(np.int64)),  # (B, P)
            "masked_lm_ids": torch.from_numpy(
                Ragged(labels, positions.offsets).padded(0, width).astype(np.int64)
            ),
            "masked_lm_weights": torch.from_numpy(real.padded(0.0, width)),
        }


class Batches:
    """Training batches as a pure function of their index, epoch after epoch: a resumed run picks up
    at any batch without replaying the ones before it.

    Each epoch is a permutation seeded by ``(seed, epoch)``. With ``bucket_window`` > 0, each run of
    ``bucket_window`` batches' worth of examples is sorted by length and cut into batches, whose order
    is then shuffled: examples of similar length share a batch, so less of it is padding. The last
    partial batch of an epoch is dropped.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, bucket_window: int = 0) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size, self.seed, self.bucket_window = batch_size, seed, bucket_window
        self.per_epoch = len(self.lengths) // batch_size
        self._epoch_cache: tuple[int, list[np.ndarray]] | None = None

    def __getitem__(self, index: int) -> np.ndarray:
        epoch, position = divmod(index, self.per_epoch)
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            self._epoch_cache = (epoch, self._epoch(epoch))
        return self._epoch_cache[1][position]

    def _epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch,)))
        order = rng.permutation(len(self.lengths))[: self.per_epoch * self.batch_size]
        if not self.bucket_window:
            return list(order.reshape(self.per_epoch, self.batch_size))
        batches = []
        span = self.bucket_window * self.batch_size
        for start in range(0, len(order), span):
            window = order[start : start + span]
            window = window[np.argsort(self.lengths[window], kind="stable")]
            batches.extend(window.reshape(-1, self.batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Return every example once, in batches of similar length (evaluation order does not matter)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
