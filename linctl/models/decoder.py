"""A causal decoder language model in the shape of fairseq's ``transformer_lm`` (Baevski & Auli,
arXiv:1809.10853; the model PrimalAttention trains on WikiText-103), any registered causal attention per
layer.

Pre-LN blocks with a final layer norm, sinusoidal positions, token embeddings scaled by √d_model, ReLU
feed-forward, and the output projection tied to the token embeddings. ``layers`` gives single layers
another attention than ``attention``: the paper's Primal.+Trans. is softmax everywhere but the last layer,
``layers: {5: {kind: primal}}``.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention import AttentionSpec
from linctl.errors import InputError
from linctl.models.base import Model, ModelOutput, TokenModelConfig
from linctl.models.layers import Activation, build_stage, run_stage


def sinusoids(length: int, d_model: int) -> Tensor:
    """Return fixed position embeddings (length, d_model): sines of every position in the first half of
    the channels, cosines in the second, at geometric frequencies (fairseq's layout)."""
    half = d_model // 2
    rates = torch.exp(torch.arange(half) * -(math.log(10000.0) / max(half - 1, 1)))  # (half,)
    angles = torch.arange(length)[:, None] * rates[None, :]  # (length, half)
    table = torch.cat([angles.sin(), angles.cos()], dim=1)
    return nn.functional.pad(table, (0, d_model - 2 * half))  # an odd width gets a zero channel


@dataclass
class DecodingCache:
    """Each layer's decoding cache and how many positions have been decoded."""

    layers: list[Any]
    length: int = field(default=0)


class DecoderModel(Model):
    """Token embeddings, causal blocks and tied output logits over the vocabulary."""

    class Config(TokenModelConfig):
        kind: Literal["decoder"] = "decoder"
        d_model: PositiveInt = 512
        n_heads: PositiveInt = 8
        n_layers: PositiveInt = 6
        d_ff: PositiveInt = 2048
        norm_first: bool = True  # fairseq's transformer_lm is pre-LN (decoder_normalize_before)
        activation: Activation = "relu"
        positions: Literal["sinusoidal", "learned"] = "sinusoidal"
        scale_embedding: bool = True  # token embeddings × √d_model
        layers: dict[int, AttentionSpec] = Field(default_factory=dict)  # layer index -> its own attention

        @model_validator(mode="before")
        @classmethod
        def _causal_attention(cls, data: Any) -> Any:
            """Make every attention causal unless it says otherwise; accept ``layers: {5: primal}`` and a
            ``default`` entry for ``attention``."""
            if not isinstance(data, dict):
                return data
            data = dict(data)
            layers = dict(data.get("layers") or {})
            if "default" in layers:
                if "attention" in data:
                    raise ValueError("give attention or layers.default, not both")
                data["attention"] = layers.pop("default")
            spec = data.get("attention", {"kind": "softmax"})
            data["attention"] = _causal(spec)
            data["layers"] = {index: _causal(spec) for index, spec in layers.items()}
            return data

        @model_validator(mode="after")
        def _layers_exist(self) -> Self:
            problems = [
                f"layers.{index}: there are layers 0 to {self.n_layers - 1}"
                for index in self.layers
                if not 0 <= index < self.n_layers
            ]
            for index, spec in {"attention": self.attention, **self.layers}.items():
                where = "attention" if index == "attention" else f"layers.{index}"
                if not spec.causal:
                    problems.append(f"{where}: a language model's attention must be causal (causal: true)")
                try:
                    spec.check_length(self.max_seq_length)
                except ValueError as exc:
                    problems.append(f"{where}: {exc}")
            if problems:
                raise ValueError("\n".join(problems))
            return self

        def attentions(self) -> list[Any]:
            """Return the attention config of every layer."""
            return [self.layers.get(index, self.attention) for index in range(self.n_layers)]

    heads = ()  # the output layer is the token embedding: nothing starts fresh
    cfg: Config

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        nn.init.normal_(self.tokens.weight, std=cfg.d_model**-0.5)  # fairseq's, with the √d scaling
        if cfg.positions == "learned":
            self.positions = nn.Embedding(cfg.max_seq_length, cfg.d_model)
            nn.init.normal_(self.positions.weight, std=cfg.d_model**-0.5)
        else:
            self.register_buffer("sinusoids", sinusoids(cfg.max_seq_length, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = build_stage(
            cfg, cfg.n_layers, cfg.max_seq_length, attentions=cfg.attentions(), activation=cfg.activation
        )
        for block in self.blocks:  # the attention layers keep the initialisation their kind gives them
            for linear in (block.ffn.up, block.ffn.down):
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if cfg.norm_first else None

    def new_cache(self) -> DecodingCache:
        """Return an empty cache for decoding one token (or one prompt) at a time."""
        return DecodingCache([block.attention.new_cache() for block in self.blocks])

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, cache: DecodingCache | None = None
    ) -> ModelOutput:
        """Return hidden states (B, T, C) and next-token logits (B, T, V) of (B, T) token ids.

        Position t sees positions up to t only. ``attention_mask`` (True at real tokens) may mark right
        padding, which no real token sees. With ``cache``, ``input_ids`` continue what was decoded.
        """
        T = input_ids.size(1)
        start = 0 if cache is None else cache.length
        if start + T > self.cfg.max_seq_length:
            raise InputError(
                f"a sequence of {start + T} tokens is longer than model.max_seq_length "
                f"({self.cfg.max_seq_length}); score long texts in windows (eval --context-window)"
            )
        x = self.tokens(input_ids) * (math.sqrt(self.cfg.d_model) if self.cfg.scale_embedding else 1.0)
        where = torch.arange(start, start + T, device=input_ids.device)
        x = x + (self.positions(where) if self.cfg.positions == "learned" else self.sinusoids[where])
        caches = None if cache is None else cache.layers
        x, aux = run_stage(self.blocks, self.drop(x), attention_mask, caches=caches)
        if cache is not None:
            cache.length += T
        hidden = x if self.final_norm is None else self.final_norm(x)
        return ModelOutput(hidden, aux, hidden @ self.tokens.weight.T)  # (B, T, V), tied to the input


def _causal(spec: Any) -> Any:
    """Return an attention spec (a kind's name or a mapping) as a mapping, causal unless it says not."""
    if isinstance(spec, str):
        return {"kind": spec, "causal": True}
    if isinstance(spec, dict):
        return {"causal": True, **spec}
    return spec
