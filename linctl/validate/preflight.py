"""`linctl validate`'s checks (the seeds' validate_only): a config's model is built and a training step
traced on fake tensors — shapes, FLOPs and memory without allocating weights — and its data is checked.

The memory estimate follows every tensor storage of a steady-state step (weights, optimizer state,
the batch, activations saved for backward, gradients, temporaries): the peak it reports is what a step
needs at once. Kernel workspaces and allocator caching are not counted.
"""

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, TypeAdapter, ValidationError
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensorMode

from linctl.config.load import apply_overrides, read_yaml, validate
from linctl.errors import ConfigError, LinctlError
from linctl.models import MODELS
from linctl.models.base import ModelConfig
from linctl.models.file import ModelFile
from linctl.runtime.device import Backend, Precision, autocast, resolve_backend
from linctl.runtime.memory import LiveMemory
from linctl.tasks import TASKS, TaskSpec
from linctl.tasks.base import Batch
from linctl.train.config import RunConfig, config_schema
from linctl.train.optim import OptimConfig, build_optimizer

SCHEMA_VERSION = 1  # of the report `linctl validate --json` writes


@dataclass
class Job:
    """What one training step of a config does: the model, its loss on a batch, the optimizer."""

    model: ModelConfig
    loss: Callable[[nn.Module, Batch], Tensor]
    example: Callable[[int], Batch]  # batch size -> a random batch of the step's shapes
    batch_size: int
    optim: OptimConfig = field(default_factory=OptimConfig)
    precision: Precision = "fp32"


@dataclass
class StepTrace:
    """One traced step at ``batch_size``: FLOPs and bytes."""

    batch_size: int
    tokens: int  # batch slots, B·T
    flops_forward: float
    flops_backward: float
    weights: int
    optimizer: int
    batch: int
    activations: int  # kept from the forward pass for the backward pass
    gradients: int
    peak: int  # everything alive at the step's fullest moment

    @property
    def resident(self) -> int:
        """Bytes alive between steps: weights and optimizer state."""
        return self.weights + self.optimizer


@dataclass
class Preflight:
    """What `linctl validate` found."""

    backend: str
    problems: list[str] = field(default_factory=list)
    parameters: int = 0
    parameters_by_module: dict[str, int] = field(default_factory=dict)  # by the class that holds them
    step: StepTrace | None = None
    memory_available: int | None = None
    max_batch: int | None = None
    seconds: float = 0.0


class TraceError(LinctlError):
    """The model's step cannot be traced at the config's shapes."""


def preflight(job: Job, backend: Backend, problems: list[str]) -> Preflight:
    """Trace ``job`` for ``backend``; ``problems`` found before (data, options) are carried along."""
    start = time.perf_counter()
    found = Preflight(backend=backend.name, problems=list(problems), memory_available=backend.memory())
    if job.precision not in backend.dtypes:
        found.problems.append(
            f"train.precision {job.precision}: backend {backend.name} supports {', '.join(backend.dtypes)}"
        )
    try:
        found.parameters, found.parameters_by_module, step, slope = _trace(job, backend)
    except TraceError as exc:
        found.problems.append(str(exc))
        found.seconds = time.perf_counter() - start
        return found
    found.step = step
    if found.memory_available is not None:
        room = found.memory_available - step.peak
        found.max_batch = max(0, job.batch_size + int(room // slope)) if slope > 0 else None
        if room < 0:
            found.problems.append(
                f"train.batch_size {job.batch_size}: a step needs an estimated {_gib(step.peak)} but backend "
                f"{backend.name} has {_gib(found.memory_available)} available; the largest batch estimated "
                f"to fit is {found.max_batch} (raise train.accumulate to keep the effective batch)"
            )
    found.seconds = time.perf_counter() - start
    return found


def _trace(job: Job, backend: Backend) -> tuple[int, dict[str, int], StepTrace, float]:
    """Return the parameter count (all, and by module class), the step at the job's batch size, and the
    peak bytes per extra example."""
    memory = LiveMemory()
    on_device = torch.device(backend.device) if backend.device.type != "cpu" else contextlib.nullcontext()
    with FakeTensorMode(), memory, on_device:
        try:
            model = MODELS.build(job.model)
        except (RuntimeError, ValueError, TypeError, LinctlError) as exc:
            raise TraceError(f"model: cannot be built: {_short(exc)}") from None
        model.train()
        parameters = sum(p.numel() for p in model.parameters())
        by_module = parameters_by_module(model)
        optimizer = build_optimizer(model, job.optim)
        for p in model.parameters():  # one update creates the optimizer state a steady-state step holds
            p.grad = torch.zeros_like(p)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        weights = sum(p.untyped_storage().nbytes() for p in _unique_tensors(model))
        optimizer_bytes = memory.settle() - weights
        memory.pin()
        state = (model, optimizer, memory, backend.device, weights, optimizer_bytes)
        step = _step(job, job.batch_size, True, *state)
        other = 2 * job.batch_size if job.batch_size == 1 else job.batch_size // 2
        second = _step(job, other, False, *state)  # only for how the peak grows with the batch
    slope = (step.peak - second.peak) / (job.batch_size - other)
    return parameters, by_module, step, slope


def _step(
    job: Job, batch_size: int, update: bool, model: nn.Module, optimizer: torch.optim.Optimizer,
    memory: LiveMemory, device: torch.device, weights: int, optimizer_bytes: int,
) -> StepTrace:  # fmt: skip
    """Trace a step; with ``update``, the optimizer's too (its temporaries can make the peak)."""
    resident = memory.reset_peak()
    batch = job.example(batch_size)
    batch_bytes = memory.settle() - resident
    try:
        start = memory.flops
        with autocast(device, job.precision):
            loss = job.loss(model, batch)
        activations = memory.settle() - resident - batch_bytes
        forward = memory.flops - start
        loss.backward()
        backward = memory.flops - start - forward
    except (RuntimeError, ValueError, TypeError, IndexError, LinctlError) as exc:
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in batch.items())
        raise TraceError(f"model: the training step does not trace at {shapes}: {_short(exc)}") from None
    gradients = sum(p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    del loss
    if update:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    del batch
    tokens = batch_size * job.model.max_seq_length
    return StepTrace(
        batch_size, tokens, float(forward), float(backward), weights,
        optimizer_bytes, batch_bytes, activations, gradients, memory.peak,
    )  # fmt: skip


def parameters_by_module(model: nn.Module) -> dict[str, int]:
    """Return how many parameters the modules of each class hold directly (a shared one counted once),
    largest first: ``{"Linear": …, "Embedding": …, "Projections": …}``."""
    counts: dict[str, int] = {}
    seen: set[int] = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                counts[type(module).__name__] = counts.get(type(module).__name__, 0) + p.numel()
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def _unique_tensors(model: nn.Module) -> list[Tensor]:
    seen: dict[int, Tensor] = {}
    for tensor in [*model.parameters(), *model.buffers()]:
        seen.setdefault(id(tensor), tensor)
    return list(seen.values())


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"


def _gib(size: float) -> str:
    return f"{size / 2**30:,.2f} GiB"


def describe(found: Preflight) -> dict[str, Any]:
    """Return the report as JSON-ready data."""
    step = found.step
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "backend": found.backend,
        "ok": not found.problems,
        "problems": found.problems,
        "parameters": found.parameters,
        "parameters_by_module": found.parameters_by_module,
        "memory_available": found.memory_available,
        "max_batch": found.max_batch,
        "seconds": round(found.seconds, 3),
    }
    if step is not None:
        data["step"] = {
            "batch_size": step.batch_size,
            "tokens": step.tokens,
            "flops_forward_per_token": step.flops_forward / step.tokens,
            "flops_train_per_token": (step.flops_forward + step.flops_backward) / step.tokens,
            "bytes": {
                "weights": step.weights,
                "optimizer": step.optimizer,
                "batch": step.batch,
                "activations": step.activations,
                "gradients": step.gradients,
                "peak": step.peak,
                "peak_above_resident": step.peak - step.resident,
            },
        }
    return data


def validate_config(
    path: Path, overrides: list[str], backend: Backend, data: bool = True, batch_size: int | None = None
) -> Preflight:
    """Check the config at ``path`` for ``backend``: every problem of the config, its data and its step.

    Run configs are traced with their task's loss; a file with only a ``model:`` section (configs/bench)
    with the bench's training step (mean square of the hidden states, AdamW); `prepare` configs are
    checked against their schema and, with ``data``, for their input files.
    """
    raw = apply_overrides(read_yaml(path), overrides)
    schema = config_schema(path, raw)
    try:
        cfg = validate(schema, raw, str(path))
    except ConfigError as exc:
        problems = str(exc).splitlines()
        if schema is RunConfig and data:
            problems += _data_problems_of_invalid(raw)
        return Preflight(backend=backend.name, problems=problems)
    if isinstance(cfg, RunConfig):
        return validate_run(cfg, backend, data, batch_size)
    if isinstance(cfg, ModelFile):
        return preflight(_model_job(cfg.model, batch_size or 1), backend, [])
    return Preflight(backend=backend.name, problems=_missing_inputs(cfg, path) if data else [])


def validate_run(
    cfg: RunConfig, backend: Backend, data: bool = True, batch_size: int | None = None
) -> Preflight:
    """Check a run config: its task's data (with ``data``) and a traced step at its micro-batch."""
    job, problems = _run_job(cfg, data, batch_size)
    if job is None:
        return Preflight(backend=backend.name, problems=problems)
    return preflight(job, backend, problems)


def require_trainable(cfg: RunConfig, device: torch.device) -> None:
    """Raise one ConfigError listing every problem `linctl validate` finds in ``cfg`` on ``device``'s
    backend, data aside (the loop's task has checked it): `linctl train --compile`'s pre-flight."""
    found = validate_run(cfg, resolve_backend(device.type), data=False)
    if found.problems:
        listed = "\n".join(f"  - {problem}" for problem in found.problems)
        raise ConfigError(f"train.compile: the config does not pass `linctl validate`:\n{listed}")


def _run_job(cfg: RunConfig, data: bool, batch_size: int | None) -> tuple[Job | None, list[str]]:
    try:
        task = TASKS.build(_unverified(cfg.task), cfg.model, cfg.train.seed)
    except LinctlError as exc:
        return None, str(exc).splitlines()
    problems = task.problems() if data else []
    job = Job(
        model=cfg.model,
        loss=lambda model, batch: task.loss(model, batch)[0],
        example=task.example_batch,
        batch_size=batch_size or cfg.train.batch_size,
        optim=cfg.optim,
        precision=cfg.train.precision,
    )
    return job, problems


def _data_problems_of_invalid(raw: dict[str, Any]) -> list[str]:
    """The data problems of a run config that failed validation elsewhere, so all are listed at once.

    The task is checked against the model's sizes as written (unvalidated: only its fields are read).
    """
    try:
        task_cfg = TypeAdapter(TaskSpec).validate_python(raw["task"])
        model_cls = MODELS.classes[raw["model"]["kind"]]
        model = model_cls.Config.model_construct(**raw["model"])  # type: ignore[attr-defined]
        task_cfg = _unverified(task_cfg)
        return TASKS.build(task_cfg, model, 0).problems()
    except (ValidationError, LinctlError, KeyError, TypeError, ValueError):
        return []


def _unverified(task_cfg: Any) -> Any:
    """The task config without shard hashing (validate checks manifests; hashing every shard is train's)."""
    if "verify_shards" in type(task_cfg).model_fields:
        return task_cfg.model_copy(update={"verify_shards": False})
    return task_cfg


def _model_job(model: ModelConfig, batch_size: int) -> Job:
    """The step `linctl bench --level model --mode train` measures, on full-length random token ids."""

    def example(size: int) -> Batch:
        return model.example_inputs(size, model.max_seq_length)  # full-length sequences

    def loss(module: nn.Module, batch: Batch) -> Tensor:
        out = module(**batch)
        return out.primary.float().square().mean() + out.aux_loss

    return Job(model=model, loss=loss, example=example, batch_size=batch_size)


def _missing_inputs(cfg: BaseModel, path: Path) -> list[str]:
    """Return the input files a prepare config names that do not exist (outputs are made, not checked)."""
    problems = []
    for name, value in cfg:
        if "output" in name:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Path) and not item.exists():
                problems.append(f"{path}: {name} {item}: no such file or folder")
    return problems
