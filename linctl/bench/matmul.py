"""The machine's matrix-multiply rate: the best of several large square products in one dtype."""

import torch

from linctl.bench.case import Case, Result
from linctl.bench.timing import time_repeats

SIZES = {"cpu": (1024, 2048, 3072), "cuda": (4096, 8192, 16384)}


def measure_matmul(case: Case, device: torch.device, dtype: torch.dtype) -> Result:
    """Time ``a @ b`` and ``a @ bᵀ`` (libraries have a fast operand order) for each size; keep the best."""
    best: Result | None = None
    for size in SIZES[device.type]:
        a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
        for rhs in (b, b.T):
            times = time_repeats(lambda: a @ rhs, case.warmup, case.repeats, device)  # noqa: B023
            result = Result(status="ok", times=times, flops=2.0 * size**3)
            if best is None or result.flops / result.median > best.flops / best.median:  # type: ignore[operator]
                best = result
    assert best is not None
    return best
