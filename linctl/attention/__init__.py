"""Attention variants, one module each; models build them through ``ATTENTION``."""

from linctl.attention.base import Attention, AttentionConfig
from linctl.attention.linformer import LinformerAttention
from linctl.attention.primal import PrimalAttention
from linctl.attention.softmax import SoftmaxAttention
from linctl.registry import Registry

ATTENTION: Registry[Attention] = Registry(
    "attention", [SoftmaxAttention, LinformerAttention, PrimalAttention]
)
AttentionSpec = ATTENTION.config_union()

__all__ = ["ATTENTION", "Attention", "AttentionConfig", "AttentionSpec"]
