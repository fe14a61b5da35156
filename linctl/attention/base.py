"""The attention interface: project to heads, mix them (one method per variant), project back.

Queries come from one input and keys/values from another: self-attention passes the same states,
cross-attention the encoder's. A causal kind can decode incrementally with a ``KVCache``. A variant
may report an auxiliary loss (added to the task's loss by the model), and declares to `linctl bench`
which of its fields to sweep and whether it is the baseline others are compared with.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from linctl.config.strict import Strict


class AttentionConfig(Strict):
    """Options every attention variant has.

    The class variables are declarations tools read instead of branching on a kind's name:
    ``swept`` lists the fields `linctl bench` measures at several values (a ``Literal`` field at each of
    its choices, any other field at the values of the bench option of the same name, e.g. ``--k``);
    ``baselines`` names the report columns this kind is the reference of, each with the field values
    of the reference variant (softmax: ``speedup`` against SDPA, ``speedup_eager`` against eager);
    ``model_level_keys`` are keys a model section may give outside ``attention`` to select this kind;
    ``cross_attention`` says whether the kind can read another input's states (``forward(memory=…)``);
    ``score_bias`` whether it forms every query-key score and so can add a ``ScoreBias`` to them (a funnel's
    relative positions and token types); ``quiet`` lists fields a bench label names only when they are set
    away from their default (a choice that changes the speed, not the result).
    The properties below declare what a variant's outputs satisfy, for the tests of those properties.
    """

    kind: str
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # on the attention weights
    causal: bool = False  # each position sees only itself and the positions before it
    bias: bool = True  # on the q, k, v and output projections

    swept: ClassVar[tuple[str, ...]] = ()
    baselines: ClassVar[dict[str, dict[str, Any]]] = {}
    model_level_keys: ClassVar[tuple[str, ...]] = ()  # keys of a model section that select this kind
    cross_attention: ClassVar[bool] = True
    score_bias: ClassVar[bool] = False
    quiet: ClassVar[tuple[str, ...]] = ()

    @property
    def reports_aux_loss(self) -> bool:
        """Whether this variant's layers report an auxiliary loss (other variants report zero)."""
        return False

    @property
    def padding_invariant(self) -> bool:
        """Whether a sequence's outputs are independent of the padding after it and of its amount."""
        return True

    def check_length(self, max_seq_length: int) -> None:
        """Raise ValueError when this attention cannot serve sequences of ``max_seq_length`` tokens."""

    def paper_figures(self, n: int) -> tuple[float | None, float | None]:
        """Return the published (speed-up, memory saving) of this variant at length ``n``, if any."""
        return None, None


# Additive scores (B|1, H, T, S) from the per-head queries (B, H, T, D) and keys (B, H, S, D), added to
# the scaled dot products before the softmax (a funnel's relative-position and token-type terms).
ScoreBias = Callable[[Tensor, Tensor], Tensor]


class AttentionOutput(NamedTuple):
    """What an attention layer returns.

    An auxiliary loss is on the scale of a loss summed over tokens (fairseq's convention: Primal's
    ``η·L_KSVD`` is added to the summed NLL); a task divides it by the tokens it averages over.
    """

    out: Tensor  # (B, T, C)
    aux_loss: Tensor  # () the variant's auxiliary loss, zero when it has none


@dataclass
class KVCache:
    """The keys and values an attention layer has seen while decoding, (B, H, T, D) each.

    Self-attention appends each step's keys and values; cross-attention fills it once from the
    encoder's states and reuses them.
    """

    k: Tensor | None = None
    v: Tensor | None = None

    @property
    def length(self) -> int:
        """Positions held."""
        return 0 if self.k is None else self.k.size(2)

    def extend(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append a step's keys and values; return every position's."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def select(self, rows: Tensor) -> None:
        """Keep the sequences ``rows`` (a beam search's surviving hypotheses), in that order."""
        if self.k is not None and self.v is not None:
            self.k, self.v = self.k[rows], self.v[rows]


class Attention(nn.Module, ABC):
    """The interface of an attention layer: built from its config, it maps states to states.

    Most kinds are a ``MixingAttention`` and implement only ``mix``; a kind whose layer has another
    shape (Primal-Attention has no values) implements ``forward`` itself.
    """

    Config: ClassVar[type[AttentionConfig]]

    def __init__(
        self, cfg: AttentionConfig, d_model: int, n_heads: int, max_seq_length: int, shared: nn.Module | None
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.cfg, self.n_heads, self.max_seq_length = cfg, n_heads, max_seq_length

    def new_cache(self) -> Any:
        """Return an empty decoding cache of this layer's kind, passed back as ``forward(cache=…)``."""
        return KVCache()

    @classmethod
    def build_shared(
        cls, cfg: AttentionConfig, d_model: int, n_heads: int, max_seq_length: int
    ) -> nn.Module | None:
        """Return the parameters every layer of a model shares (passed to each layer as ``shared``)."""
        return None

    @abstractmethod
    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        memory: Tensor | None = None,
        cache: Any = None,
    ) -> AttentionOutput:
        """Attend from ``x`` (B, T, C) over ``memory`` (B, S, C), or over ``x`` itself when None.

        ``mask`` (B, S) is True at the real positions of what is attended over (None: all are real).
        With ``cache`` (from ``new_cache``), ``x`` continues the positions decoded so far.
        """

    @property
    def dropout_p(self) -> float:
        """The attention dropout in force: none in eval mode."""
        return self.cfg.dropout if self.training else 0.0


class MixingAttention(Attention):
    """Multi-head attention that projects to per-head queries, keys and values, mixes them (``mix``, one
    method per kind) and projects back."""

    def __init__(
        self, cfg: AttentionConfig, d_model: int, n_heads: int, max_seq_length: int, shared: nn.Module | None
    ) -> None:
        super().__init__(cfg, d_model, n_heads, max_seq_length, shared)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=cfg.bias)  # q, k, v stacked: one product for self
        self.out = nn.Linear(d_model, d_model, bias=cfg.bias)

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        memory: Tensor | None = None,
        cache: KVCache | None = None,
        score_bias: ScoreBias | None = None,
    ) -> AttentionOutput:
        """Attend from ``x`` (B, T, C) over ``memory`` (B, S, C), or over ``x`` itself when None.

        ``mask`` (B, S) is True at the real positions of what is attended over (None: all are real).
        With ``cache``, self-attention appends this step's keys and values to the cache and attends
        over all of them (causal kinds only); cross-attention computes the memory's once and reuses them.
        ``score_bias`` adds to the scores (kinds whose config declares ``score_bias`` only).
        """
        if score_bias is not None and not self.cfg.score_bias:
            raise ValueError(f"{self.cfg.kind} attention cannot add a score bias (it forms no T×S scores)")
        B, T, C = x.shape
        H = self.n_heads
        if memory is None:
            q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # 3 × (B, H, T, D)
            if cache is not None:
                if not self.cfg.causal:
                    raise ValueError(
                        f"{self.cfg.kind} attention without causal: true cannot decode with a cache"
                    )
                k, v = cache.extend(k, v)  # (B, H, past + T, D)
        else:
            weight, bias = self.qkv.weight, self.qkv.bias
            q = (
                F.linear(x, weight[:C], None if bias is None else bias[:C])
                .view(B, T, H, C // H)
                .transpose(1, 2)
            )
            if cache is not None and cache.k is not None:
                k, v = cache.k, cache.v  # type: ignore[assignment]
            else:
                S = memory.size(1)
                kv = F.linear(memory, weight[C:], None if bias is None else bias[C:])  # (B, S, 2C)
                k, v = kv.view(B, S, 2, H, C // H).permute(2, 0, 3, 1, 4)  # 2 × (B, H, S, D)
                if cache is not None:
                    cache.extend(k, v)
        # (B, H, T, D), or that and an auxiliary loss; only score_bias kinds take the bias
        mixed = self.mix(q, k, v, mask) if score_bias is None else self.mix(q, k, v, mask, score_bias(q, k))
        y, aux = mixed if isinstance(mixed, tuple) else (mixed, x.new_zeros(()))
        return AttentionOutput(self.out(y.transpose(1, 2).reshape(B, T, C)), aux)

    @abstractmethod
    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
        """Return each query's mixture of values, (B, H, T, D), and optionally a scalar auxiliary loss.

        Queries are (B, H, T, D), keys and values (B, H, S, D); ``mask`` (B, S) marks real keys. A kind
        whose config declares ``score_bias`` also takes ``bias``, scores (B|1, H, T, S) to add.
        """


def visible(mask: Tensor | None, causal: bool, T: int, S: int, device: torch.device) -> Tensor | None:
    """Return which of S keys each of T queries may see, broadcastable to (B, H, T, S), or None for all.

    Causal queries are the last T of S positions (T < S while decoding with a cache).
    """
    keep = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, S)
    if causal:
        past = torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)  # (T, S)
        keep = past if keep is None else keep & past
    return keep
