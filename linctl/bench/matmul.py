"""The machine's matrix-multiply rate: the best of several large square products in one dtype."""

import torch
from torch import Tensor

from linctl.bench.case import Case, Result
from linctl.bench.timing import time_repeats

SIZES = {"cpu": (1024, 2048, 3072), "cuda": (4096, 8192, 16384)}
# Libraries have a fast operand order (CPU bf16: `a @ bᵀ` ran 20-70× faster than `a @ b` on an AVX2 machine).
ORDERS = {"a @ b": lambda a, b: a @ b, "a @ bᵀ": lambda a, b: a @ b.T}


def measure_matmul(case: Case, device: torch.device, dtype: torch.dtype) -> Result:
    """Pick the faster operand order on the smallest size, then time it at every size; keep the best."""

    def square(size: int) -> Tensor:
        return torch.randn(size, size, device=device).to(dtype)

    a, b = square(SIZES[device.type][0]), square(SIZES[device.type][0])
    probe = {name: min(time_repeats(lambda f=f: f(a, b), 1, 1, device)) for name, f in ORDERS.items()}
    product = ORDERS[min(probe, key=probe.__getitem__)]
    best: Result | None = None
    for size in SIZES[device.type]:
        a, b = square(size), square(size)
        times = time_repeats(lambda: product(a, b), case.warmup, case.repeats, device)  # noqa: B023
        result = Result(status="ok", times=times, flops=2.0 * size**3)
        if best is None or result.flops / result.median > best.flops / best.median:  # type: ignore[operator]
            best = result
    assert best is not None
    return best
