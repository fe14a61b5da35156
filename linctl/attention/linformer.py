"""Linformer self-attention (Wang et al., arXiv:2006.04768). Cost O(T·k) in time and memory.

Keys and values (n × D per head) are projected along the sequence to k × D by learned matrices E and F
before the softmax. Sharing (paper §4): ``none`` gives every layer and head its own E and F;
``headwise`` one E and F per layer; ``key-value`` one matrix per layer for both; ``layerwise`` one
matrix for the whole model. Keys and values at padded positions are zeroed before the projection, and
a sequence of T < n tokens uses the first T columns, so outputs do not depend on trailing padding.

Where E is shared across heads, E·(X·W_K + 1·bᵀ) = (E·X)·W_K + (E·1)·bᵀ: projecting the layer's input
along the sequence first applies W_K and W_V to k rows instead of n. Each layer takes whichever order
costs fewer FLOPs for the shapes at hand (``projection_order: auto``); with padding, E·(m ⊙ X) and E·m
stand for E·X and E·1, so both orders give the same outputs.
"""

import math
from typing import Any, ClassVar, Literal, Self

import torch
import torch.nn.functional as F
from pydantic import PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention.base import AttentionConfig, AttentionOutput, KVCache, MixingAttention, ScoreBias
from linctl.errors import InputError

Sharing = Literal["none", "headwise", "key-value", "layerwise"]
# Which product along the sequence comes first: ``keys-first`` projects keys and values (the paper's
# order), ``input-first`` the layer's input before W_K and W_V; ``auto`` picks the cheaper per call.
ProjectionOrder = Literal["auto", "input-first", "keys-first"]

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

    @property
    def distinct(self) -> int:
        """How many different matrices project keys and values (E and F of every head)."""
        return self.e_proj.size(0) * (1 if self.f_proj is None else 2)

    def transposed(self, T: int) -> tuple[Tensor, Tensor]:
        """Eᵀ and Fᵀ (H|1, T, k) for T positions: the first T columns of E and F."""
        e = self.e_proj[:, :, :T].transpose(1, 2).contiguous()  # (H|1, T, k)
        f = e if self.f_proj is None else self.f_proj[:, :, :T].transpose(1, 2).contiguous()
        return e, f

    def forward(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Project keys and values (B, H, T, D) to (B, H, k, D) with the first T columns of E and F."""
        e, f = self.transposed(k.size(2))
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


def _along_sequence(source: Tensor, mask: Tensor | None, e: Tensor) -> tuple[Tensor, Tensor]:
    """Return E·(m ⊙ X), (B, k, C) or (B, H, k, C), and E·m, (B|1, H|1, k), for the input X (B, S, C)
    (zero at padding already) and Eᵀ (H|1, S, k).

    The product is spelt Xᵀ·Eᵀ, the operand order in which CPU bf16 matmuls take the fast path (see
    ``_project``).
    """
    B = source.size(0)
    if e.size(0) == 1:
        projected = (source.transpose(1, 2) @ e.expand(B, -1, -1)).transpose(1, 2)  # (B, k, C)
    else:
        projected = (source.transpose(1, 2)[:, None] @ e).transpose(2, 3)  # (B, H, k, C)
    real = source.new_ones(1, source.size(1)) if mask is None else mask.to(source.dtype)  # (B|1, S): m
    mass = (real[:, None, None, :] @ e).squeeze(2)  # (B|1, H|1, k): E·m
    return projected, mass


def _to_heads(projected: Tensor, mass: Tensor, weight: Tensor, bias: Tensor | None, H: int) -> Tensor:
    """Apply the key (or value) projection to the input projected along the sequence: (E·X)·Wᵀ + (E·m)·bᵀ,
    per head (B, H, k, D), from ``_along_sequence``'s outputs and W (C, C), b (C)."""
    C = weight.size(1)
    D = C // H
    if projected.dim() == 3:
        B, k, _ = projected.shape
        keys = F.linear(projected, weight).view(B, k, H, D).transpose(1, 2)  # (B, H, k, D)
    else:
        keys = projected @ weight.view(H, D, C).transpose(1, 2)  # (B, H, k, D)
    if bias is None:
        return keys
    return keys + mass[..., None] * bias.view(H, D)[None, :, None, :]  # (B, H, k, D)


class LinformerAttention(MixingAttention):
    """Attention over k projected keys and values instead of all n."""

    class Config(AttentionConfig):
        kind: Literal["linformer"] = "linformer"
        k: PositiveInt = 256  # the projected length (Cerebras: projected_dims)
        sharing: Sharing = "none"
        projection_order: ProjectionOrder = "auto"

        swept: ClassVar[tuple[str, ...]] = ("k", "sharing")
        quiet: ClassVar[tuple[str, ...]] = ("projection_order",)
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

    def input_first(self, length: int) -> bool:
        """Whether keys and values of ``length`` positions are made by projecting the input first.

        Per sequence of S = ``length`` positions, C = d_model: the keys-first order costs 4·S·C² (W_K and
        W_V on S rows) + 4·k·S·C (E and F on the keys and values, whatever the sharing); input-first
        costs 4·k·C² (W_K and W_V on k rows) + 2·k·S·C per distinct matrix on the input (one when keys
        and values share E, two for E and F, 2·H with E and F per head).
        """
        if self.cfg.projection_order != "auto":
            return self.cfg.projection_order == "input-first"
        C, k = self.out.in_features, self.cfg.k
        keys_first = 4 * length * C * C + 4 * k * length * C
        input_first = 4 * k * C * C + 2 * self.projections.distinct * k * length * C
        return input_first < keys_first

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        memory: Tensor | None = None,
        cache: KVCache | None = None,
        score_bias: ScoreBias | None = None,
    ) -> AttentionOutput:
        source = x if memory is None else memory
        length = source.size(1)
        if length > self.max_seq_length:
            raise InputError(
                f"a sequence of {length} tokens is longer than the Linformer's max_seq_length "
                f"({self.max_seq_length}); cut inputs to at most {self.max_seq_length} tokens"
            )
        if cache is not None or score_bias is not None or not self.input_first(length):
            return super().forward(x, mask, memory=memory, cache=cache, score_bias=score_bias)
        B, T, C = x.shape
        H = self.n_heads
        weight, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x, weight[:C], None if bias is None else bias[:C]).view(B, T, H, C // H).transpose(1, 2)
        if mask is not None:
            source = source.masked_fill(~mask[:, :, None], 0.0)  # (B, S, C): m ⊙ X
        e, f = self.projections.transposed(length)  # (H|1, S, k)
        along_e = _along_sequence(source, mask, e)
        along_f = along_e if f is e else _along_sequence(source, mask, f)
        k = _to_heads(*along_e, weight[C : 2 * C], None if bias is None else bias[C : 2 * C], H)
        v = _to_heads(*along_f, weight[2 * C :], None if bias is None else bias[2 * C :], H)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)  # (B, H, T, D)
        return AttentionOutput(self.out(y.transpose(1, 2).reshape(B, T, C)), x.new_zeros(()))

    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        # reached through forward, which has checked the keys' length
        if mask is not None:
            padded = ~mask[:, None, :, None]  # (B, 1, T, 1)
            k, v = k.masked_fill(padded, 0.0), v.masked_fill(padded, 0.0)
        k, v = self.projections(k, v)  # (B, H, k, D)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p)
