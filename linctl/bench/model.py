"""Model-level workloads: a whole model (the preset's or a config's) on the model's random inputs."""

import torch
from pydantic import TypeAdapter

from linctl.bench.case import Case
from linctl.bench.workload import Workload, batch_width, lengths_of, mean_square
from linctl.models import MODELS, ModelSpec


def model_workload(case: Case, device: torch.device, dtype: torch.dtype) -> Workload:
    """Build the model of ``case`` (``max_seq_length = n``) and its batches of random inputs."""
    module = MODELS.build(model_config(case)).to(device)
    batches, tokens = input_batches(case, device)
    return Workload(module, batches, tokens, loss=lambda out: mean_square(out.primary) + out.aux_loss)


def model_config(case: Case) -> ModelSpec:
    """Return the model config of ``case``: its sizes and attention, at sequence length n."""
    data = {**case.model, "max_seq_length": case.n, "attention": case.attention}
    return TypeAdapter(ModelSpec).validate_python(data)


def input_batches(case: Case, device: torch.device) -> tuple[list, int]:
    """Return ((), inputs) per batch from the model's ``example_inputs`` and the number of real tokens;
    a batch whose sequences all fill its width has no padding mask."""
    cfg = model_config(case)
    gen = torch.Generator().manual_seed(case.seed)
    batches, tokens = [], 0
    for lengths in lengths_of(case):
        width = batch_width(case, lengths)
        padded = lengths if any(length != width for length in lengths) else None
        inputs = cfg.example_inputs(len(lengths), width, lengths=padded, generator=gen)
        batches.append(((), {name: tensor.to(device) for name, tensor in inputs.items()}))
        tokens += sum(lengths)
    return batches, tokens
