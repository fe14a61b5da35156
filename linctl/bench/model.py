"""Model-level workloads: a whole encoder (embeddings and every block) on random token ids."""

import torch
from pydantic import TypeAdapter

from linctl.bench.case import Case
from linctl.bench.workload import Workload, batch_width, lengths_of, padding_mask
from linctl.models import MODELS, ModelSpec


def model_workload(case: Case, device: torch.device, dtype: torch.dtype) -> Workload:
    """Build the encoder of ``case`` (``max_seq_length = n``) and batches of random token ids."""
    data = {"kind": "encoder", **case.model, "max_seq_length": case.n, "attention": case.attention}
    module = MODELS.build(TypeAdapter(ModelSpec).validate_python(data)).to(device)
    return Workload(module, *token_batches(case, device))


def token_batches(case: Case, device: torch.device) -> tuple[list, int]:
    """Return ((ids,), {"attention_mask": mask}) per batch and the number of real tokens."""
    gen = torch.Generator().manual_seed(case.seed)
    batches, tokens = [], 0
    for lengths in lengths_of(case):
        width = batch_width(case, lengths)
        ids = torch.randint(
            0, case.model["vocab_size"], (len(lengths), width), generator=gen, device="cpu"
        ).to(device)
        batches.append(((ids,), {"attention_mask": padding_mask(lengths, width, device)}))
        tokens += sum(lengths)
    return batches, tokens
