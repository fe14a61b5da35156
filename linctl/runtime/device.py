"""Pick the device a command runs on, the autocast context its precision asks for, and the backends
(cpu, cuda, cs) that `linctl validate` and `linctl compile` target."""

import contextlib
import importlib.util
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

import torch

from linctl.errors import ConfigError

DeviceName = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16"]


def resolve_device(name: DeviceName) -> torch.device:
    """Return the device for ``name``: ``auto`` is CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to torch; use --device cpu or auto")
    return torch.device(name)


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[None]:
    """Return the mixed-precision context of ``precision`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """Return the torch generator states that dropout and sampling on ``device`` draw from."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def set_rng_states(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore generator states saved by ``rng_states``."""
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


MEMINFO = Path("/proc/meminfo")


class Backend(ABC):
    """A hardware target of `linctl validate` / `compile`: what it supports and how it compiles."""

    name: ClassVar[str]
    dtypes: ClassVar[tuple[Precision, ...]]
    dynamic_shapes: ClassVar[bool]  # whether one compiled program serves any batch size
    compile_path: ClassVar[str]

    @abstractmethod
    def missing(self) -> str | None:
        """Return why this backend cannot be used here, or None when it can."""

    @abstractmethod
    def memory(self) -> int | None:
        """Return the bytes a training step may use, or None when the backend manages memory itself."""

    @property
    def device(self) -> torch.device:
        """Return the torch device that eager runs and checks use."""
        return torch.device(self.name)


class CpuBackend(Backend):
    name = "cpu"
    dtypes = ("fp32", "bf16")
    dynamic_shapes = True
    compile_path = "torch.export → AOTInductor (C++ / OpenMP)"

    def missing(self) -> str | None:
        return None

    def memory(self) -> int | None:
        """The memory available now (MemAvailable), not the machine's total."""
        if not MEMINFO.exists():
            return None
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
        return None


class CudaBackend(Backend):
    name = "cuda"
    dtypes = ("fp32", "bf16")
    dynamic_shapes = True
    compile_path = "torch.export → AOTInductor (Triton)"

    def missing(self) -> str | None:
        if torch.cuda.is_available():
            return None
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        return f"no CUDA device is visible to torch {torch.__version__} ({build})"

    def memory(self) -> int | None:
        free, _total = torch.cuda.mem_get_info()
        return free


class CerebrasBackend(Backend):
    name = "cs"
    dtypes = ("fp32", "bf16")
    dynamic_shapes = False  # a CS program is compiled for one batch size
    compile_path = "cerebras.pytorch (cstorch) compile on a Cerebras appliance"

    def missing(self) -> str | None:
        if not _importable("cerebras.pytorch"):
            return (
                "the Cerebras PyTorch package (cerebras.pytorch) is not importable in this Python; it pins "
                "its own torch, so set it up in its own virtual environment as Cerebras's install guide says "
                "(pip install cerebras_pytorch) and run linctl from that environment"
            )
        return (
            "cerebras.pytorch is importable, but linctl does not drive the Cerebras compiler yet: run the "
            "Cerebras model zoo's --validate_only / --compile_only on this config's model instead"
        )

    def memory(self) -> int | None:
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")  # cstorch traces on CPU tensors


def _importable(module: str) -> bool:
    parent = module.split(".")[0]
    return importlib.util.find_spec(parent) is not None and importlib.util.find_spec(module) is not None


BACKENDS: dict[str, Backend] = {b.name: b for b in (CpuBackend(), CudaBackend(), CerebrasBackend())}
BackendName = Literal["auto", "cpu", "cuda", "cs"]  # what --device takes where a backend is meant


def resolve_backend(name: str) -> Backend:
    """Return the backend ``name``: ``auto`` is cuda when a GPU is visible, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in BACKENDS:
        raise ConfigError(f"--device {name!r}: unknown; choose one of auto, {', '.join(BACKENDS)}")
    why = BACKENDS[name].missing()
    if why is not None:
        raise ConfigError(f"--device {name}: not available here: {why}")
    return BACKENDS[name]
