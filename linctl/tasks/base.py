"""The task interface: a training objective that turns batches into a loss and knows its evaluation."""

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from linctl.config.strict import Strict
from linctl.data.loader import eval_batches
from linctl.data.manifest import read_manifest
from linctl.data.shards import ShardSet
from linctl.data.tokenizer import load_vocab
from linctl.errors import InputError
from linctl.runtime.device import Precision, autocast

Batch = dict[str, Tensor]
MakeBatch = Callable[[np.ndarray, int], Batch]  # (example indices, batch index) -> batch
R = TypeVar("R")


class TaskConfig(Strict):
    """Options every task has."""

    kind: str


class Task(ABC):
    """A training objective over prepared data.

    ``loss`` returns the mean loss to back-propagate and detached sums (``summarize`` turns sums
    gathered over any number of batches into metrics such as perplexity).
    """

    Config: ClassVar[type[TaskConfig]]

    @property
    @abstractmethod
    def train_lengths(self) -> np.ndarray:
        """Return the token count of every training example (for length bucketing)."""

    @abstractmethod
    def train_batch(self, indices: np.ndarray, index: int) -> Batch:
        """Return the training batch of examples ``indices``; ``index`` seeds its random choices."""

    @property
    @abstractmethod
    def eval_lengths(self) -> np.ndarray:
        """Return the token count of every evaluation example."""

    @abstractmethod
    def eval_batch(self, indices: np.ndarray, index: int) -> Batch:
        """Return the evaluation batch of examples ``indices``."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Return the batch's mean loss and the sums its metrics are made of."""

    @abstractmethod
    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn sums gathered over batches into metrics."""

    @abstractmethod
    def problems(self) -> list[str]:
        """Return every problem of the task's data with the model, one line each (none: it would train)."""

    def check(self) -> None:
        """Raise one InputError listing every problem, so that bad input fails before the first step."""
        problems = self.problems()
        if problems:
            raise InputError("\n".join(problems))

    @abstractmethod
    def example_batch(self, batch_size: int) -> Batch:
        """Return a random training batch of the shapes the config and data imply (for tracing)."""

    def ranking(self) -> tuple[str, bool]:
        """Return the evaluation metric that ranks checkpoints, and whether higher is better."""
        return "loss", False

    def protocol(self) -> str | None:
        """Say how the evaluation metrics were computed, where a number alone would be ambiguous."""
        return None

    def files(self) -> dict[str, Path]:
        """Return files a checkpoint must carry to be used again, by name (e.g. the vocabulary)."""
        return {}

    @abstractmethod
    def count_tokens(self, batch: Batch) -> tuple[int, int]:
        """Return the batch's real tokens and its slots (real and padding), for throughput and padding."""

    def evaluate(
        self,
        model: nn.Module,
        device: torch.device,
        batch_size: int,
        precision: Precision,
        only: str | None = None,
    ) -> dict[str, float]:
        """Return the metrics of ``model`` on every evaluation example (none without evaluation data).

        The evaluation split is scored by ``score``, each of ``more_eval_splits`` under its name
        (``dev_mismatched_accuracy``), then ``evaluate_generation`` adds what generating scores.
        ``only`` names the one metric wanted: when scoring gives it, nothing is generated.
        """
        if not len(self.eval_lengths):
            return {}
        metrics = self.score(model, device, batch_size, precision, self.eval_lengths, self.eval_batch)
        if only is not None and only in metrics:
            return metrics
        for name, lengths, make_batch in self.more_eval_splits():
            scored = self.score(model, device, batch_size, precision, lengths, make_batch)
            metrics.update({f"{name}_{metric}": value for metric, value in scored.items()})
        return metrics | self.evaluate_generation(model, device, batch_size, precision)

    def score(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision,
        lengths: np.ndarray, make_batch: MakeBatch,
    ) -> dict[str, float]:  # fmt: skip
        """Return the metrics of one split: by default ``summarize`` of the loss sums of every batch."""
        sums: dict[str, float] = {}
        for batch_sums in run_batches(model, device, precision, lengths, batch_size, make_batch, self.sums):
            for key, value in batch_sums.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        return self.summarize(sums)

    def sums(self, model: nn.Module, batch: Batch) -> dict[str, Tensor]:
        """Return the sums the metrics of ``batch`` are made of."""
        return self.loss(model, batch)[1]

    def more_eval_splits(self) -> list[tuple[str, np.ndarray, MakeBatch]]:
        """Return further labelled splits to score at each evaluation: (name, lengths, batch maker)."""
        return []

    def evaluate_generation(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision
    ) -> dict[str, float]:
        """Return the metrics of what the model generates (a translation's BLEU); none by default."""
        return {}


@runtime_checkable
class Predictor(Protocol):
    """A task that writes predictions for unlabelled examples (a GLUE test set's submission file)."""

    def predict(
        self, model: nn.Module, device: torch.device, batch_size: int, precision: Precision, folder: Path
    ) -> list[tuple[int, str]]:
        """Return (index, prediction) for every example of the shard folder ``folder``."""
        ...


_SHARE: ContextVar[tuple[int, int]] = ContextVar("evaluation_share", default=(0, 1))


@contextlib.contextmanager
def shared_evaluation(rank: int, world: int) -> Iterator[None]:
    """Share out evaluation among the processes of a torchrun job: inside, ``run_batches`` in process
    ``rank`` of ``world`` runs every ``world``-th batch, and every process gets the results of all. The
    model's forward must need no collective (``Job.evaluating``): processes run different numbers."""
    token = _SHARE.set((rank, world))
    try:
        yield
    finally:
        _SHARE.reset(token)


def run_batches(
    model: nn.Module, device: torch.device, precision: Precision, lengths: np.ndarray, batch_size: int,
    make_batch: MakeBatch, step: Callable[[nn.Module, Batch], R],
) -> list[R]:  # fmt: skip
    """The one evaluation loop: ``step`` on every batch of examples of ``lengths`` (length-sorted), on
    ``device`` under ``precision``, in eval mode without gradients; the model's mode is restored.

    Under ``shared_evaluation`` each process runs its share and the results are gathered, in order.
    """
    rank, world = _SHARE.get()
    batches = eval_batches(lengths, batch_size)
    was_training = model.training
    model.eval()
    found = []
    try:
        with torch.no_grad():
            for index in range(rank, len(batches), world):
                batch = {key: value.to(device) for key, value in make_batch(batches[index], index).items()}
                with autocast(device, precision):
                    found.append(step(model, batch))
    finally:
        model.train(was_training)
    if world == 1:
        return found
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, tree_map(lambda x: x.cpu() if isinstance(x, Tensor) else x, found))
    return [gathered[index % world][index // world] for index in range(len(batches))]


def mask_tokens(mask: Tensor) -> tuple[int, int]:
    """Return the real tokens and the slots of a (B, T) padding mask, True at real tokens."""
    return int(mask.sum()), mask.numel()


def open_shards(folder: Path | None, key: str, kind: str, verify: bool) -> tuple[ShardSet | None, list[str]]:
    """Open the `linctl prepare KIND` shards of ``folder`` (the config key ``key``); return them, or None
    and the one problem that stops them being read (unset, missing, unreadable, another kind)."""
    if folder is None:
        return None, [f"{key} is not set: give the output folder of `linctl prepare {kind}`"]
    if not Path(folder).is_dir():
        return None, [f"{key} {folder}: no such folder"]
    try:
        found = read_manifest(Path(folder), verify=False).get("kind")
        if found != kind:  # before opening: another kind's files need not be shards at all
            return None, [f"{key} {folder}: holds {found!r} output, not `prepare {kind}` shards"]
        return ShardSet(folder, verify=verify), []
    except InputError as exc:
        return None, [f"{key}: {exc}"]


def vocab_problems(options: Mapping[str, Any], where: str, vocab_size: int) -> list[str]:
    """Return the problems of shards made with ``options`` (a manifest's) for a model of ``vocab_size``
    tokens: their vocabulary file is gone, or is of another size. ``where`` names the shards."""
    vocab_file = Path(options["vocab_file"])
    if not vocab_file.is_file():
        return [f"{where}: the shards' vocabulary {vocab_file} is gone"]
    size = len(load_vocab(vocab_file, options["do_lower_case"]).ids)
    if size == vocab_size:
        return []
    return [
        f"{where}: shards use a vocabulary of {size} tokens ({vocab_file}) but model.vocab_size is "
        f"{vocab_size}; set model.vocab_size: {size}"
    ]
