"""Building blocks shared by the architectures: embeddings, feed-forward, the Transformer block, stages."""

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from linctl.attention import ATTENTION, Attention, AttentionConfig
from linctl.attention.base import KVCache, ScoreBias
from linctl.models.base import ModelConfig


class Embeddings(nn.Module):
    """Token + learned position (+ segment) embeddings, then layer norm and dropout."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_seq_length: int,
        segment_vocab_size: int,
        eps: float,
        dropout: float,
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_seq_length, d_model)
        self.segments = nn.Embedding(segment_vocab_size, d_model) if segment_vocab_size else None
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, input_ids: Tensor, segment_ids: Tensor | None = None) -> Tensor:
        """Embed (B, T) ids as (B, T, C)."""
        T = input_ids.size(1)
        x = self.tokens(input_ids) + self.positions(torch.arange(T, device=input_ids.device))
        if self.segments is not None:
            x = x + self.segments(torch.zeros_like(input_ids) if segment_ids is None else segment_ids)
        return self.drop(self.norm(x))


def gelu_tanh(x: Tensor) -> Tensor:
    """GELU's tanh approximation (Hugging Face's ``gelu_new``, the Funnel-Transformer's activation)."""
    return nn.functional.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu": nn.functional.gelu, "relu": nn.functional.relu, "gelu_new": gelu_tanh}
Activation = Literal["gelu", "relu", "gelu_new"]


class FeedForward(nn.Module):
    """Position-wise two-layer network: GELU (BERT), ReLU (fairseq's transformer_lm) or tanh-GELU (Funnel)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, activation: Activation = "gelu") -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.down(self.activation(self.up(x))))


class Block(nn.Module):
    """Self-attention, cross-attention over an encoder's states (decoders only) and feed-forward
    sublayers, each with a residual connection and layer norm (after it, or before with ``norm_first``)."""

    def __init__(
        self,
        attention: Attention,
        cfg: ModelConfig,
        cross: Attention | None = None,
        activation: Activation = "gelu",
    ) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.cross = cross
        self.norm_cross = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cross is not None else None
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, activation)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm_first = cfg.norm_first

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        *,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        cache: Any = None,
        memory_cache: KVCache | None = None,
        source: Tensor | None = None,
        score_bias: ScoreBias | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Transform (B, T, C); return it and the attention's auxiliary loss.

        ``mask`` (B, T) is True at real tokens; ``memory`` (B, S, C) with ``memory_mask`` (B, S) is what
        the cross-attention reads; the caches hold keys and values while decoding. ``source`` (B, S, C)
        gives the self-attention other keys and values than ``x`` (a funnel's pooled queries read the
        unpooled states; ``mask`` then marks its real tokens) and ``score_bias`` adds to its scores.
        """
        extra: dict[str, Any] = {} if source is None else {"memory": source}
        if score_bias is not None:
            extra["score_bias"] = score_bias
        x, aux = self._sublayer(self.attention, self.norm1, x, mask=mask, cache=cache, **extra)
        if self.cross is not None:
            x, cross_aux = self._sublayer(
                self.cross, self.norm_cross, x, mask=memory_mask, memory=memory, cache=memory_cache
            )
            aux = aux + cross_aux
        if self.norm_first:
            return x + self.ffn(self.norm2(x)), aux
        return self.norm2(x + self.ffn(x)), aux

    def _sublayer(
        self, attention: Attention, norm: nn.Module, x: Tensor, **kwargs: Any
    ) -> tuple[Tensor, Tensor]:
        if self.norm_first:
            out, aux = attention(norm(x), **kwargs)
            return x + self.drop(out), aux
        out, aux = attention(x, **kwargs)
        return norm(x + self.drop(out)), aux


def build_stage(
    cfg: ModelConfig,
    n_layers: int,
    max_seq_length: int,
    cross: AttentionConfig | None = None,
    memory_length: int | None = None,
    attentions: Sequence[AttentionConfig] | None = None,
    activation: Activation = "gelu",
) -> nn.ModuleList:
    """Return ``n_layers`` blocks over sequences of up to ``max_seq_length`` tokens.

    A model builds one stage per sequence length it runs at (a funnel pools between stages). Every block
    uses ``cfg.attention`` unless ``attentions`` gives one config per block (a decoder whose last layer
    is Primal). Parameters an attention config shares across layers (layerwise Linformer) are shared by
    the blocks of the stage that use that config. ``cross`` adds cross-attention over ``memory_length``
    encoder states to every block.
    """
    attentions = list(attentions) if attentions is not None else [cfg.attention] * n_layers
    if len(attentions) != n_layers:
        raise ValueError(f"{len(attentions)} attention configs for a stage of {n_layers} blocks")
    shared = {
        spec: ATTENTION.cls(spec).build_shared(spec, cfg.d_model, cfg.n_heads, max_seq_length)
        for spec in dict.fromkeys(attentions)
    }
    if cross is not None:
        memory_length = memory_length or max_seq_length
        cross_shared = ATTENTION.cls(cross).build_shared(cross, cfg.d_model, cfg.n_heads, memory_length)

    def block(spec: AttentionConfig) -> Block:
        attention = ATTENTION.build(spec, cfg.d_model, cfg.n_heads, max_seq_length, shared[spec])
        if cross is None:
            return Block(attention, cfg, activation=activation)
        reader = ATTENTION.build(cross, cfg.d_model, cfg.n_heads, memory_length, cross_shared)
        return Block(attention, cfg, reader, activation)

    return nn.ModuleList(block(spec) for spec in attentions)


def run_stage(
    blocks: nn.ModuleList,
    x: Tensor,
    mask: Tensor | None,
    caches: Sequence[Any] | None = None,
    memory_caches: Sequence[KVCache] | None = None,
    **kwargs: Any,
) -> tuple[Tensor, Tensor]:
    """Run ``x`` (B, T, C) through a stage's blocks; return the states and the summed auxiliary loss.

    ``caches`` holds one decoding cache per block (``block.attention.new_cache()``) while decoding, and
    ``memory_caches`` one per block for its cross-attention's keys and values of the encoder's states.
    """
    aux = x.new_zeros(())
    for i, block in enumerate(blocks):
        cache = None if caches is None else caches[i]
        if memory_caches is not None:
            kwargs["memory_cache"] = memory_caches[i]
        x, block_aux = block(x, mask, cache=cache, **kwargs)
        aux = aux + block_aux
    return x, aux


def init_bert(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) weights for linear and embedding layers, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
