"""Attention-level workloads: one multi-head attention block of a registered kind on random inputs."""

import torch

from linctl.attention import ATTENTION
from linctl.bench.case import Case
from linctl.bench.workload import Workload, batch_width, lengths_of, mean_square, padding_mask
from linctl.config.load import validate


def attention_workload(case: Case, device: torch.device, dtype: torch.dtype) -> Workload:
    """Build the block of ``case.attention`` for sequences of up to ``case.n`` tokens, and its inputs."""
    cfg = validate(ATTENTION.classes[case.attention["kind"]].Config, case.attention, "attention")
    d_model, n_heads = case.model["d_model"], case.model["n_heads"]
    shared = ATTENTION.cls(cfg).build_shared(cfg, d_model, n_heads, case.n)
    module = ATTENTION.build(cfg, d_model, n_heads, case.n, shared).to(device)
    work = Workload(module, loss=lambda out: mean_square(out.out) + out.aux_loss)
    for lengths in lengths_of(case):
        width = batch_width(case, lengths)
        x = torch.randn(len(lengths), width, d_model, device=device, dtype=dtype)
        work.batches.append(((x, padding_mask(lengths, width, device)), {}))
        work.tokens += sum(lengths)
    return work
