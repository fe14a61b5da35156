"""The Linformer paper's Table 3 (Wang et al. 2020, arXiv:2006.04768, §5.3): inference speed-up and
memory saving of Linformer with layerwise sharing over a standard Transformer, full forward passes at
the largest batch that fits a 16 GB V100; memory saving is the ratio of those largest batches."""

K = (128, 256, 512, 1024, 2048)
# n: one figure per k above; None where k ≥ n.
SPEEDUP: dict[int, tuple[float | None, ...]] = {
    512: (1.5, 1.3, None, None, None),
    1024: (1.7, 1.6, 1.3, None, None),
    2048: (2.6, 2.4, 2.1, 1.3, None),
    4096: (3.4, 3.2, 2.8, 2.2, 1.3),
    8192: (5.5, 5.0, 4.4, 3.5, 2.1),
    16384: (8.6, 7.8, 7.0, 5.6, 3.3),
    32768: (13.0, 12.0, 11.0, 8.8, 5.0),
    65536: (20.0, 18.0, 16.0, 14.0, 7.9),
}
MEMORY: dict[int, tuple[float | None, ...]] = {
    512: (1.7, 1.5, None, None, None),
    1024: (3.0, 2.9, 1.8, None, None),
    2048: (6.1, 5.6, 3.6, 2.0, None),
    4096: (14.0, 13.0, 8.3, 4.3, 2.3),
    8192: (28.0, 26.0, 17.0, 8.5, 4.5),
    16384: (56.0, 48.0, 32.0, 16.0, 8.0),
    32768: (56.0, 48.0, 36.0, 18.0, 16.0),
    65536: (60.0, 52.0, 40.0, 20.0, 18.0),
}


def paper_figures(n: int, k: int) -> tuple[float | None, float | None]:
    """Return the paper's (speed-up, memory saving) at sequence length ``n`` and projected length ``k``."""
    if n not in SPEEDUP or k not in K:
        return None, None
    return SPEEDUP[n][K.index(k)], MEMORY[n][K.index(k)]
