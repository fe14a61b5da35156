"""The largest batch that fits: doubling, then bisection between the last fit and the first miss."""

from collections.abc import Callable


def largest_batch(fits: Callable[[int], bool], limit: int = 1 << 16) -> int:
    """Return the largest batch b ≤ ``limit`` with ``fits(b)``, for ``fits`` true up to some size and
    false beyond it; 0 when a single sequence does not fit. Calls ``fits`` O(log b) times."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    if high > limit:
        return low
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
