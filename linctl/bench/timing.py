"""Timers and peak-memory meters: CUDA events after synchronisation, resident-set high-water marks on CPU."""

import ctypes
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

PROC_STAT = Path("/proc/stat")
PROC_STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def time_repeats(fn: Callable[[], object], warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Return the seconds each of ``repeats`` calls of ``fn`` took, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return times
    torch.cuda.synchronize(device)
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)
    ]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1e3 for start, end in events]


def idle_cores(window: float = 0.5) -> float | None:
    """How many cores were idle, on average, over the next ``window`` seconds; None off Linux."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in PROC_STAT.read_text().splitlines()[0].split()[1:]]
        return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user … steal

    if not PROC_STAT.exists():
        return None
    idle0, total0 = sample()
    time.sleep(window)
    idle1, total1 = sample()
    cores = os.cpu_count() or 1
    return cores * (idle1 - idle0) / max(total1 - total0, 1)


def _status_kib(field: str) -> int:
    for line in PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"{PROC_STATUS} has no {field}")


class MemoryMeter:
    """Peak memory of the work between ``start`` and ``peak``, above what was resident at ``start``.

    CUDA: the caching allocator's peak. CPU: the process's resident high-water mark (VmHWM), reset at
    ``start`` through /proc/self/clear_refs, so the worker must run one case per process.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident size
            self.base = _status_kib("VmRSS")

    def peak(self) -> int:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.base
        return _status_kib("VmHWM") - self.base


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
STEADY_THRESHOLD = 32 << 20  # where glibc's own adaptive threshold settles on 64-bit machines


def mmap_threshold(size: int) -> None:
    """Serve CPU allocations of ``size`` bytes and more by fresh pages that return to the system when freed.

    A small threshold makes the resident size follow live tensors exactly (for the memory run); the
    steady value is what glibc's adaptive default converges to (for the timed runs). Free heap memory
    is handed back, so cached blocks do not hide the next run's growth. Does nothing off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_MMAP_THRESHOLD, size)
    # A fixed threshold also fixes the trim threshold; keep glibc's adaptive ratio of 2 so that the
    # heap top is not handed back and faulted in again on every step.
    libc.mallopt(M_TRIM_THRESHOLD, 2 * size)
    libc.malloc_trim(0)


@contextmanager
def address_space_limit(budget: int | None, device: torch.device) -> Iterator[None]:
    """On CPU, make allocations beyond ``budget`` more bytes fail (a clean out-of-memory error)
    instead of waking the kernel's OOM killer. Virtual size runs ahead of resident size, so the limit
    leaves a margin; the exact budget is checked against the measured peak afterwards."""
    if budget is None or device.type == "cuda":
        yield
        return
    old = resource.getrlimit(resource.RLIMIT_AS)
    limit = _status_kib("VmSize") + int(budget * 1.25) + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)
