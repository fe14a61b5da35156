"""The attention interface: project to heads, mix them (one method per variant), project back."""

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from linctl.config.strict import Strict


class AttentionConfig(Strict):
    """Options every attention variant has."""

    kind: str
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # on the attention weights
    causal: bool = False  # each position sees only itself and the positions before it
    bias: bool = True  # on the q, k, v and output projections

    def check_length(self, max_seq_length: int) -> None:
        """Raise ValueError when this attention cannot serve sequences of ``max_seq_length`` tokens."""


class Attention(nn.Module, ABC):
    """Multi-head attention; a variant implements ``mix`` on per-head queries, keys and values."""

    Config: ClassVar[type[AttentionConfig]]

    def __init__(
        self, cfg: AttentionConfig, d_model: int, n_heads: int, max_seq_length: int, shared: nn.Module | None
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.cfg, self.n_heads, self.max_seq_length = cfg, n_heads, max_seq_length
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=cfg.bias)
        self.out = nn.Linear(d_model, d_model, bias=cfg.bias)

    @classmethod
    def build_shared(
        cls, cfg: AttentionConfig, d_model: int, n_heads: int, max_seq_length: int
    ) -> nn.Module | None:
        """Return the parameters every layer of a model shares (passed to each layer as ``shared``)."""
        return None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over ``x`` (B, T, C); ``mask`` (B, T) is True at real tokens, None when all are real."""
        B, T, C = x.shape
        H = self.n_heads
        q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, D)
        y = self.mix(q, k, v, mask)  # (B, H, T, D)
        return self.out(y.transpose(1, 2).reshape(B, T, C))

    @abstractmethod
    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """Return each query's mixture of values, (B, H, T, D)."""

    @property
    def dropout_p(self) -> float:
        """The attention dropout in force: none in eval mode."""
        return self.cfg.dropout if self.training else 0.0


def visible(mask: Tensor | None, causal: bool, T: int, device: torch.device) -> Tensor | None:
    """Return which keys each query may see, broadcastable to (B, H, T, T), or None for all of them."""
    keep = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T)
    if causal:
        past = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)
        keep = past if keep is None else keep & past
    return keep
