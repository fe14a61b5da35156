"""Building blocks shared by the architectures: embeddings, feed-forward, the Transformer block."""

from typing import Any, Self

import torch
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor, nn

from linctl.attention import ATTENTION, AttentionSpec
from linctl.attention.softmax import SoftmaxAttention
from linctl.config.strict import Strict


class ModelConfig(Strict):
    """Sizes every Transformer has. The Cerebras keys ``attention_style`` and ``projected_dims``
    at this level select a Linformer attention, as in the model zoo's configs."""

    kind: str
    d_model: PositiveInt = 768
    n_heads: PositiveInt = 12
    n_layers: PositiveInt = 12
    d_ff: PositiveInt = 3072
    max_seq_length: PositiveInt = 512
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    layer_norm_eps: float = Field(1e-5, gt=0.0)
    norm_first: bool = False  # pre-LN blocks; False is BERT's post-LN
    attention: AttentionSpec = Field(default_factory=SoftmaxAttention.Config)

    @model_validator(mode="before")
    @classmethod
    def _cerebras_attention(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not {"attention_style", "projected_dims"} & data.keys():
            return data
        data = dict(data)
        attention = dict(data.get("attention") or {})
        attention.setdefault("kind", "linformer")
        for key in ("attention_style", "projected_dims"):
            if key in data:
                attention[key] = data.pop(key)
        data["attention"] = attention
        return data

    @model_validator(mode="after")
    def _sizes_fit(self) -> Self:
        problems = []
        if self.d_model % self.n_heads:
            problems.append(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); "
                f"head size would be {self.d_model / self.n_heads:g}"
            )
        try:
            self.attention.check_length(self.max_seq_length)
        except ValueError as exc:
            problems.append(f"attention: {exc}")
        if problems:
            raise ValueError("\n".join(problems))
        return self


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


class FeedForward(nn.Module):
    """Position-wise two-layer GELU network."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.down(nn.functional.gelu(self.up(x))))


class Block(nn.Module):
    """Attention and feed-forward sublayers, each with a residual connection and layer norm."""

    def __init__(self, attention: nn.Module, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.norm_first = cfg.norm_first

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """Transform (B, T, C); ``mask`` (B, T) is True at real tokens."""
        if self.norm_first:
            x = x + self.drop(self.attention(self.norm1(x), mask))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.drop(self.attention(x, mask)))
        return self.norm2(x + self.ffn(x))


def build_blocks(cfg: ModelConfig) -> nn.ModuleList:
    """Return ``cfg.n_layers`` blocks; parameters the attention shares across layers appear in each."""
    attention = ATTENTION.cls(cfg.attention)
    shared = attention.build_shared(cfg.attention, cfg.d_model, cfg.n_heads, cfg.max_seq_length)
    blocks = nn.ModuleList(
        Block(ATTENTION.build(cfg.attention, cfg.d_model, cfg.n_heads, cfg.max_seq_length, shared), cfg)
        for _ in range(cfg.n_layers)
    )
    return blocks


def init_bert(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: normal(0, std) weights for linear and embedding layers, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
