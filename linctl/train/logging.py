"""What a training run reports: ``metrics.jsonl`` (and TensorBoard when installed) and a progress bar."""

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from linctl.atomic import write_text_atomic
from linctl.progress import bars_off, console

METRICS_FILE = "metrics.jsonl"
SCHEMA_VERSION = 1  # of each record of metrics.jsonl


class MetricsLog:
    """Append one JSON object per record to ``metrics.jsonl``; mirror scalars to TensorBoard if present."""

    def __init__(self, model_dir: Path, resume_step: int) -> None:
        self.path = Path(model_dir) / METRICS_FILE
        self._drop_after(resume_step)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._board = _tensorboard(Path(model_dir) / "tensorboard")

    def _drop_after(self, step: int) -> None:
        """Forget records of steps after the checkpoint a run resumes from (a killed run wrote them)."""
        if not self.path.exists():
            return
        kept = [
            line
            for line in self.path.read_text(encoding="utf-8").splitlines()
            if (record := _record(line)) is not None and record["step"] <= step
        ]
        write_text_atomic(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        """Record ``record`` (it has a ``step``)."""
        self._fh.write(json.dumps({"schema_version": SCHEMA_VERSION, **record}) + "\n")
        self._fh.flush()
        if self._board is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self._board.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._fh.close()
        if self._board is not None:
            self._board.close()


def read_metrics(model_dir: Path) -> list[dict[str, Any]]:
    """Return the records of a model folder's ``metrics.jsonl``."""
    path = Path(model_dir) / METRICS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:  # the last line of a run killed while writing it (or a blank one)
        return None
    return record if isinstance(record, dict) and "step" in record else None


def _tensorboard(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


class TrainProgress:
    """A progress bar over optimizer steps showing loss, learning rate and tokens per second."""

    def __init__(self, total: int, done: int, shown: bool = True) -> None:
        columns = (
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  {task.fields[rate]} tok/s"),
            TimeElapsedColumn(),
        )
        self._bar = Progress(*columns, console=console, disable=bars_off() or not shown)
        self._task = self._bar.add_task("train", total=total, completed=done, loss="-", lr="-", rate="-")

    def __enter__(self) -> "TrainProgress":
        self._bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def update(self, step: int, loss: float, lr: float, tokens_per_s: float) -> None:
        """Show that ``step`` optimizer steps are done."""
        self._bar.update(
            self._task, completed=step, loss=f"{loss:.3f}", lr=f"{lr:.2e}", rate=f"{tokens_per_s:,.0f}"
        )
