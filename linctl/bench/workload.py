"""A workload: a module and the batches one timed repeat feeds it, full or padded to varied lengths."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from linctl.bench.case import Case

PADDED_BATCHES = 4  # a padded case runs this many batches per repeat


def mean_square(out: Tensor) -> Tensor:
    """The training-mode loss of a module that returns a tensor: the mean square of its outputs."""
    return out.float().square().mean()


@dataclass
class Workload:
    """``module(*args, **kwargs)`` per batch; ``loss`` turns what it returns into the scalar a training
    step back-propagates (the outputs' mean square, plus any auxiliary loss); ``tokens`` counts real
    tokens."""

    module: nn.Module
    batches: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    tokens: int = 0
    loss: Callable[[Any], Tensor] = mean_square


def lengths_of(case: Case) -> list[list[int]]:
    """Return the real length of every sequence of every batch of ``case``.

    A full case is one batch of n-token sequences. A padded case draws 4·B lengths uniformly from
    [n/4, n] (seeded, so every variant of a run sees the same ones); linctl sorts them into batches of
    similar length, as its training loader's length bucketing does, while peers, which take no
    padding mask (or no length bucketing), keep the drawn order and pad every batch to n.
    """
    if not case.padded:
        return [[case.n] * case.batch]
    gen = torch.Generator().manual_seed(case.seed)
    drawn = torch.randint(
        max(1, case.n // 4), case.n + 1, (PADDED_BATCHES * case.batch,), generator=gen, device="cpu"
    ).tolist()
    if case.peer is None:
        drawn.sort()
    return [drawn[i : i + case.batch] for i in range(0, len(drawn), case.batch)]


def padding_mask(lengths: list[int], width: int, device: torch.device) -> Tensor | None:
    """Return (B, width) True at real tokens, or None when every sequence fills the width."""
    if all(length == width for length in lengths):
        return None
    return torch.arange(width, device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]


def batch_width(case: Case, lengths: list[int]) -> int:
    """Linctl pads a batch to its longest sequence; peers pad to n."""
    return max(lengths) if case.peer is None else case.n
