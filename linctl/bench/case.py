"""One measurement, as the main process describes it to a worker and the worker reports it back."""

import statistics
from typing import Any, Literal

from pydantic import Field

from linctl.config.strict import Strict

Status = Literal["ok", "oom", "timeout", "error"]


class Case(Strict):
    """What to build and how to run it: an attention block, a whole model (ours or a peer's), or matmuls."""

    what: Literal["attention", "model", "matmul"]
    label: str = ""  # the attention variant's label or the peer's name
    peer: str | None = None
    attention: dict[str, Any] = Field(default_factory=dict)
    model: dict[str, Any] = Field(default_factory=dict)  # d_model, n_heads (and more at model level)
    n: int = 0  # sequence length
    batch: int = 1
    mode: Literal["inference", "train"] = "inference"
    dtype: Literal["fp32", "bf16"] = "fp32"
    device: str = "cpu"
    warmup: int = 1
    repeats: int = 5
    padded: bool = False  # four batches of lengths drawn from [n/4, n] instead of one full batch
    budget: int | None = None  # bytes the measured work may add to what is resident before it
    threads: int | None = None  # CPU: torch's intra-op threads in the worker; None: torch's default
    seed: int = 0


class Result(Strict):
    """A case's outcome: repeat times in seconds, FLOPs and real tokens per repeat, peak working memory."""

    status: Status
    message: str = ""
    times: list[float] = Field(default_factory=list)
    flops: float | None = None
    tokens: int = 0
    peak_bytes: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        """Half the range of the repeat times, relative to their median."""
        return (max(self.times) - min(self.times)) / 2 / self.median
