"""Pick the device a command runs on and the autocast context its precision asks for."""

import contextlib
from typing import Literal

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
