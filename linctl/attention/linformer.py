"""Linformer self-attention (Wang et al., arXiv:2006.04768). Cost O(T·k) in time and memory.

Keys and values (n × D per head) are projected along the sequence to k × D by learned matrices E and F
before the softmax. Sharing (paper §4): ``none`` gives every layer and head its own E and F;
``headwise`` one E and F per layer; ``key-value`` one matrix per layer for both; ``layerwise`` one
matrix for the whole model. Keys and values at padded positions are zeroed before the projection, and
a sequence of T < n tokens uses the first T columns, so outputs do not depend on trailing padding.
"""

import math
from typing import Any, ClassVar, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention.base import AttentionConfig, MixingAttention
from linctl.errors import InputError

Sharing = Literal["none", "headwise", "key-value", "layerwise"]

# The Cerebras model zoo's `attention_style` names for the same sharing modes.
CEREBRAS_STYLES: dict[str, Sharing] = {
    "linformer-shared-heads": "headwise",
    "linformer-shared-kv": "key-value",
    "linformer-shared-layers": "layerwise",
}


# The paper's Table 3 (§5.3): inference speed-up and memory saving over a standard Transformer, full
# forward passes at the largest batch that fits a 16 GB V100; memory saving is the ratio of those batches.
PAPER_K = (128, 256, 512, 1024, 2048)
# n: one figure per k above; None where k ≥ n.
PAPER_SPEEDUP: dict[int, tuple[float | None, ...]] = {
    512: (1.5, 1.3, None, None, None),
    1024: (1.7, 1.6, 1.3, None, None),
    2048: (2.6, 2.4, 2.1, 1.3, None),
    4096: (3.4, 3.2, 2.8, 2.2, 1.3),
    8192: (5.5, 5.0, 4.4, 3.5, 2.1),
    16384: (8.6, 7.8, 7.0, 5.6, 3.3),
    32768: (13.0, 12.0, 11.0, 8.8, 5.0),
    65536: (20.0, 18.0, 16.0, 14.0, 7.9),
}
PAPER_MEMORY: dict[int, tuple[float | None, ...]] = {
    512: (1.7, 1.5, None, None, None),
    1024: (3.0, 2.9, 1.8, None, None),
    2048: (6.1, 5.6, 3.6, 2.0, None),
    4096: (14.0, 13.0, 8.3, 4.3, 2.3),
    8192: (28.0, 26.0, 17.0, 8.5, 4.5),
    16384: (56.0, 48.0, 32.0, 16.0, 8.0),
    32768: (56.0, 48.0, 36.0, 18.0, 16.0),
    65536: (60.0, 52.0, 40.0, 20.0, 18.0),
}


class Projections(nn.Module):
    """E (and F unless keys and values share it): ``matrices`` × (k, n), one per head or one for all."""

    def __init__(self, matrices: int, k: int, n: int, separate_values: bool) -> None:
        super().__init__()
        bound = math.sqrt(6.0 / (k + n))  # Glorot-uniform for a k × n matrix
        self.e_proj = nn.Parameter(torch.empty(matrices, k, n).uniform_(-bound, bound))
        self.f_proj = (
            nn.Parameter(torch.empty(matrices, k, n).uniform_(-bound, bound)) if separate_values else None
        )

    def forward(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Project keys and values (B, H, T, D) to (B, H, k, D) with the first T columns of E and F."""
        T = k.size(2)
        e = self.e_proj[:, :, :T].transpose(1, 2).contiguous()  # (H|1, T, k)
        f = e if self.f_proj is None else self.f_proj[:, :, :T].transpose(1, 2).contiguous()
        return _project(k, e), _project(v, f)


def _project(x: Tensor, e: Tensor) -> Tensor:
    """Return E·x for x (B, H, T, D) and Eᵀ (H|1, T, k), as (B, H, k, D).

    The products are spelt xᵀ·Eᵀ: in that operand order CPU bf16 matmuls take the fast BLAS path
    (E·x ran 30× slower on an AVX2 CPU), and fp32 is as fast either way. One matrix for every head
    is one (C, T) × (T, k) product per sequence instead of H small ones.
    """
    B, H, T, D = x.shape
    if e.size(0) == 1:
        xt = x.transpose(1, 2).reshape(B, T, H * D).transpose(1, 2)  # (B, C, T), a view when x is one
        y = xt @ e.expand(B, -1, -1)  # (B, C, k)
    else:
        y = x.transpose(2, 3) @ e  # (B, H, D, k)
    # SDPA's fused CPU kernel wants unit stride along D; the copy is only B·k·C numbers.
    return y.view(B, H, D, -1).transpose(2, 3).contiguous()  # (B, H, k, D)


class LinformerAttention(MixingAttention):
    """Attention over k projected keys and values instead of all n."""

    class Config(AttentionConfig):
        kind: Literal["linformer"] = "linformer"
        k: PositiveInt = 256  # the projected length (Cerebras: projected_dims)
        sharing: Sharing = "none"

        swept: ClassVar[tuple[str, ...]] = ("k", "sharing")
        model_level_keys: ClassVar[tuple[str, ...]] = ("attention_style", "projected_dims")  # Cerebras

        @model_validator(mode="before")
        @classmethod
        def _cerebras_names(cls, data: Any) -> Any:
            if not isinstance(data, dict):
                return data
            data = dict(data)
            for theirs, ours in (("projected_dims", "k"), ("attention_style", "sharing")):
                if theirs in data and ours in data:
                    raise ValueError(f"give {ours} or its Cerebras name {theirs}, not both")
            if "projected_dims" in data:
                data["k"] = data.pop("projected_dims")
            if "attention_style" in data:
                style = data.pop("attention_style")
                if style not in CEREBRAS_STYLES:
                    raise ValueError(f"attention_style {style!r} is not one of {', '.join(CEREBRAS_STYLES)}")
                data["sharing"] = CEREBRAS_STYLES[style]
            return data

        @model_validator(mode="after")
        def _not_causal(self) -> Self:
            if self.causal:
                raise ValueError(
                    "Linformer has no causal form (its projection mixes future positions into every key); "
                    "use kind: softmax for a causal model"
                )
            return self

        def check_length(self, max_seq_length: int) -> None:
            if self.k > max_seq_length:
                raise ValueError(
                    f"linformer k ({self.k}) is larger than max_seq_length ({max_seq_length}); "
                    f"k must be at most the sequence length"
                )

        def paper_figures(self, n: int) -> tuple[float | None, float | None]:
            """The paper's Table 3 (layerwise sharing; the other sharing modes compute the same products)."""
            if n not in PAPER_SPEEDUP or self.k not in PAPER_K:
                return None, None
            column = PAPER_K.index(self.k)
            return PAPER_SPEEDUP[n][column], PAPER_MEMORY[n][column]

    cfg: Config

    def __init__(
        self, cfg: Config, d_model: int, n_heads: int, max_seq_length: int, shared: nn.Module | None
    ) -> None:
        super().__init__(cfg, d_model, n_heads, max_seq_length, shared)
        if cfg.sharing == "layerwise":
            if shared is None:
                raise ValueError("layerwise Linformer needs the model's shared projection (build_shared)")
            self.projections = shared
        else:
            heads = n_heads if cfg.sharing == "none" else 1
            self.projections = Projections(heads, cfg.k, max_seq_length, cfg.sharing != "key-value")

    @classmethod
    def build_shared(cls, cfg: Config, d_model: int, n_heads: int, max_seq_length: int) -> nn.Module | None:
        if cfg.sharing != "layerwise":
            return None
        return Projections(1, cfg.k, max_seq_length, separate_values=False)

    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        length = k.size(2)
        if length > self.max_seq_length:
            raise InputError(
                f"a sequence of {length} tokens is longer than the Linformer's max_seq_length "
                f"({self.max_seq_length}); cut inputs to at most {self.max_seq_length} tokens"
            )
        if mask is not None:
            padded = ~mask[:, None, :, None]  # (B, 1, T, 1)
            k, v = k.masked_fill(padded, 0.0), v.masked_fill(padded, 0.0)
        k, v = self.projections(k, v)  # (B, H, k, D)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)
