"""Matmul FLOP counting with torch's ``FlopCounterMode``, plus the formulas torch 2.13 lacks.

Importing this module registers them, so every counter in linctl counts CPU flash attention.
"""

import torch
from torch.utils.flop_counter import FlopCounterMode, flop_registry, register_flop_formula

__all__ = ["FlopCounterMode", "flop_registry"]


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """Q·Kᵀ and P·V: 2 × 2·B·H·Tq·Tk·D (torch counts the CUDA kernels alike but not the CPU one)."""
    B, H, Tq, D = query_shape
    return 4 * B * H * Tq * key_shape[-2] * D


def _sdpa_cpu_backward_flops(grad_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """dV, dP, dQ and dK: twice the forward products."""
    return 2 * _sdpa_cpu_flops(query_shape, key_shape, value_shape)


for _op, _formula in (
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, _sdpa_cpu_flops),
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward, _sdpa_cpu_backward_flops),
):
    if _op not in flop_registry:
        register_flop_formula(_op)(_formula)
