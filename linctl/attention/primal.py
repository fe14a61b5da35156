"""Primal-Attention (Chen et al., arXiv:2305.19798): attention as an asymmetric kernel SVD, in primal form.

No T×T matrix and no values: each head maps its L2-normalised queries and keys onto s learned directions,
e = φ(q)·W_e and r = φ(k)·W_r (s numbers each), and its output is one shared linear map W_c of [e; r].
Cost O(T·D·s) per head. The KSVD regulariser of the authors' loss, η times the batch mean of
(J_e + J_r − Tr(W_eᵀ W_r))², is the layer's auxiliary loss.

Two forms, after the authors' code (github.com/yingyichen-cyy/PrimalAttention, commit 084d122c):
- causal (their WikiText-103 layer): positions interact only through prefix means of the queries and keys,
  taken before the normalisation. Masks are ignored: right padding cannot reach real tokens, by causality,
  but left padding would. A ``PrimalCache`` of running sums decodes token by token exactly as the whole
  sequence (the original decoder fed the last token alone, so its prefix mean saw one token).
- non-causal (their TimeSeries/LRA/CV layers, "data-dependent projection"): W_e and W_r are made per
  sequence from L̃ landmark rows of the layer input at ``linspace(0, T − 1, L̃)`` and learned W̃ (L̃ × s
  per head), with L̃ = min(max_seq_length, s·rank_multi) fixed at build time. As in LRA, a padding mask
  zeroes padded rows before the output projection, but pads still feed the landmarks (whose positions
  depend on the padded length T) and the KSVD loss, so outputs depend on padding.
"""

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from linctl.attention.base import Attention, AttentionConfig, AttentionOutput


@dataclass
class PrimalCache:
    """The running sums of the queries and keys a causal Primal layer has seen, (B, H, D) each."""

    q_sum: Tensor | None = None
    k_sum: Tensor | None = None
    length: int = 0  # positions summed

    def extend(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Add a step's queries and keys (B, H, T, D); return their prefix means over every position seen."""
        q_sums, k_sums = q.cumsum(dim=2), k.cumsum(dim=2)  # (B, H, T, D)
        if self.q_sum is not None and self.k_sum is not None:
            q_sums, k_sums = q_sums + self.q_sum[:, :, None], k_sums + self.k_sum[:, :, None]
        T = q.size(2)
        # the divisor cancels in the normalisation that follows; it keeps the sums' magnitude O(1)
        count = torch.arange(self.length + 1, self.length + T + 1, device=q.device, dtype=q.dtype)[:, None]
        self.q_sum, self.k_sum, self.length = q_sums[:, :, -1], k_sums[:, :, -1], self.length + T
        return q_sums / count, k_sums / count  # (B, H, T, D)


class PrimalAttention(Attention):
    """Primal-Attention: per-head projections of normalised queries and keys onto s directions each."""

    class Config(AttentionConfig):
        # dropout (inherited) is accepted and not applied: there are no attention weights to drop, and the
        # reference layer builds a dropout that it never applies.
        kind: Literal["primal"] = "primal"
        rank: PositiveInt = 30  # s, the directions per head
        rank_multi: PositiveInt = 10  # non-causal form: L̃ = min(max_seq_length, rank·rank_multi) landmarks
        ksvd_weight: float = Field(0.1, ge=0.0)  # η of the KSVD loss

        cross_attention: ClassVar[bool] = False  # the reference has no form that reads another input's states

        @property
        def reports_aux_loss(self) -> bool:
            return self.ksvd_weight > 0

        @property
        def padding_invariant(self) -> bool:
            return self.causal  # the non-causal landmarks read padded rows, at positions set by the padding

    cfg: Config

    def __init__(
        self, cfg: Config, d_model: int, n_heads: int, max_seq_length: int, shared: nn.Module | None
    ) -> None:
        super().__init__(cfg, d_model, n_heads, max_seq_length, shared)  # no q/k/v stack: there are no values
        D, s = d_model // n_heads, cfg.rank
        self.landmarks = min(max_seq_length, s * cfg.rank_multi)  # L̃, used by the non-causal form only
        self.q_proj = nn.Linear(d_model, d_model, bias=cfg.bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=cfg.bias)
        self.out = nn.Linear(d_model, d_model, bias=cfg.bias)
        for proj in (self.q_proj, self.k_proj):
            nn.init.xavier_uniform_(proj.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out.weight)
        if self.out.bias is not None:
            nn.init.zeros_(self.out.bias)
        # W_e, W_r: (H, D, s) causal; W̃_e, W̃_r: (H, L̃, s) non-causal. orthogonal_ flattens each to
        # (H, rows·s), so the flattened heads are orthonormal rows (each head has Frobenius norm 1).
        rows = D if cfg.causal else self.landmarks
        self.w_e = nn.Parameter(nn.init.orthogonal_(torch.empty(n_heads, rows, s)))
        self.w_r = nn.Parameter(nn.init.orthogonal_(torch.empty(n_heads, rows, s)))
        self.lam = nn.Parameter(torch.rand(n_heads, s))  # Λ, the singular values of each head
        self.w_c = nn.Linear(2 * s, D)  # W_c, one map from [e; r] to a head's output, shared by the heads

    def new_cache(self) -> PrimalCache:
        return PrimalCache()

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None = None,
        *,
        memory: Tensor | None = None,
        cache: PrimalCache | None = None,
    ) -> AttentionOutput:
        """Mix the positions of ``x`` (B, T, C); return the output (B, T, C) and η·L_KSVD.

        ``mask`` (B, T), True at real tokens, is ignored by the causal form and zeroes the padded rows
        of the non-causal form before the output projection. With ``cache`` (causal only) ``x`` is the
        next T positions of a sequence whose earlier positions the cache has summed, and the loss covers
        these T positions.
        """
        if memory is not None:
            raise ValueError("Primal-Attention has no cross-attention form; use another kind to read memory")
        if cache is not None and not self.cfg.causal:
            raise ValueError("primal attention without causal: true cannot decode with a cache")
        B, T, C = x.shape
        H = self.n_heads
        q = self.q_proj(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        k = self.k_proj(x).view(B, T, H, C // H).transpose(1, 2)  # (B, H, T, D)
        if self.cfg.causal:
            q, k = (PrimalCache() if cache is None else cache).extend(q, k)  # prefix means, (B, H, T, D)
            w_e, w_r = self.w_e, self.w_r  # (H, D, s)
        else:
            w_e, w_r = self.data_dependent_projections(x)  # (B, H, D, s)
        e = F.normalize(q, dim=-1) @ w_e  # (B, H, T, s)
        r = F.normalize(k, dim=-1) @ w_r  # (B, H, T, s)
        y = self.w_c(torch.cat([e, r], dim=-1))  # (B, H, T, D)
        if mask is not None and not self.cfg.causal:
            y = y * mask[:, None, :, None].to(y.dtype)  # padded rows come out as the output bias
        out = self.out(y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        aux = self.cfg.ksvd_weight * self.ksvd_loss(e, r) if self.cfg.ksvd_weight else x.new_zeros(())
        return AttentionOutput(out, aux)

    def landmark_positions(self, length: int, device: torch.device) -> Tensor:
        """Return the L̃ evenly spaced positions (L̃,) of a length-``length`` input the non-causal form reads.

        They are the reference's ``linspace(0, length − 1, L̃)`` truncated to int64, which repeats
        positions when ``length`` < L̃. They are computed on the CPU so that every device truncates the
        same floats: a model reads the same rows wherever it runs.
        """
        return torch.linspace(0, length - 1, self.landmarks).long().to(device)

    def data_dependent_projections(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return the non-causal form's W_e and W_r (B, H, D, s), made from landmarks of ``x`` (B, T, C)."""
        B, T, C = x.shape
        H = self.n_heads
        rows = x[:, self.landmark_positions(T, x.device)]  # (B, L̃, C)
        rows = rows.view(B, self.landmarks, H, C // H).permute(0, 2, 3, 1)  # (B, H, D, L̃)
        return rows @ self.w_e, rows @ self.w_r  # (B, H, D, s) each

    def ksvd_loss(self, e: Tensor, r: Tensor) -> Tensor:
        """Return L_KSVD = mean over the batch of (J_e + J_r − Tr)² for scores ``e`` and ``r`` (B, H, T, s).

        J_e = Σ_h Σ_t Σ_k λ_hk² e_htk² / (2HT) (the reference squares Λ, so its sign does not matter),
        J_r likewise, and Tr = Σ_h tr(W_e,hᵀ W_r,h) / H. The non-causal form takes Tr from the learned W̃,
        as the reference's TimeSeries layer does: the data-dependent W_e, W_r would make Tr depend on each
        sequence and on its padding. Sums are in float32 (T·H·s squares).
        """
        H, T = e.size(1), e.size(2)
        lam2 = self.lam.float().square()[:, None, :]  # (H, 1, s)
        j_e = (lam2 * e.float().square()).sum(dim=(1, 2, 3)) / (2 * H * T)  # (B,)
        j_r = (lam2 * r.float().square()).sum(dim=(1, 2, 3)) / (2 * H * T)  # (B,)
        trace = (self.w_e.float() * self.w_r.float()).sum() / H  # the mean of tr(W_e,hᵀ W_r,h) over heads
        return (j_e + j_r - trace).square().mean()
