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
