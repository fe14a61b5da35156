"""Scaled dot-product attention (Vaswani et al., arXiv:1706.03762). Cost O(T²) in time and memory."""

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from linctl.attention.base import AttentionConfig, MixingAttention, visible


class SoftmaxAttention(MixingAttention):
    """Full attention: torch's fused ``scaled_dot_product_attention``, or the T×T scores spelt out."""

    class Config(AttentionConfig):
        kind: Literal["softmax"] = "softmax"
        impl: Literal["sdpa", "eager"] = "sdpa"  # eager: the materialised baseline the Linformer paper timed

        swept: ClassVar[tuple[str, ...]] = ("impl",)
        score_bias: ClassVar[bool] = True
        baselines: ClassVar[dict[str, dict[str, Any]]] = {
            "speedup": {"impl": "sdpa"},
            "speedup_eager": {"impl": "eager"},
        }

    cfg: Config

    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, bias: Tensor | None = None) -> Tensor:
        keep = visible(mask, self.cfg.causal, q.size(2), k.size(2), q.device)  # (B|1, 1, T, S) or None
        if self.cfg.impl == "sdpa":
            if bias is not None:  # one additive mask: the bias, -inf at keys no query may see
                keep = bias if keep is None else torch.where(keep, bias, float("-inf"))
            return F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=self.dropout_p)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, S)
        if bias is not None:
            scores = scores + bias
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        weights = F.dropout(scores.softmax(dim=-1), self.dropout_p)
        return weights @ v
