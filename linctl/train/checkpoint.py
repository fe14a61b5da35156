"""Checkpoints: one folder per step, written under a temporary name and renamed into place.

``checkpoint-00001000/`` holds ``model.safetensors``, ``optimizer.pt``, ``trainer_state.json`` (step,
generator states, data position), ``config.yaml`` (the run's config) and the files the task needs to use
the model again (the vocabulary). A folder under its final name is complete.
"""

import base64
import io
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from linctl.atomic import TMP_MARK, atomic_folder
from linctl.errors import ConfigError, InputError

PREFIX = "checkpoint-"
_NAME = re.compile(rf"{PREFIX}(\d+)")
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE = (
    "model.safetensors",
    "optimizer.pt",
    "trainer_state.json",
    "config.yaml",
)
SCHEMA_VERSION = 1  # of trainer_state.json


def checkpoints(model_dir: Path) -> list[Path]:
    """Return the complete checkpoint folders of ``model_dir``, oldest first."""
    if not Path(model_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(model_dir).iterdir() if (m := _NAME.fullmatch(p.name))]
    return [path for _, path in sorted(found) if (path / STATE_FILE).is_file()]


def latest(model_dir: Path) -> Path | None:
    """Return the newest complete checkpoint of ``model_dir``, or None."""
    found = checkpoints(model_dir)
    return found[-1] if found else None


def remove_partial(model_dir: Path) -> None:
    """Delete the temporary folders of checkpoints that a killed run did not finish."""
    for stray in Path(model_dir).glob(f"{PREFIX}*{TMP_MARK}*"):
        shutil.rmtree(stray, ignore_errors=True)


def save(
    model_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: Mapping[str, Any],
    config: Mapping[str, Any],
    files: Mapping[str, Path],
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` atomically and delete all but the newest ``keep``.

    Args:
        state: JSON-able trainer state; tensors among its values (generator states) are stored as base64.
        files: extra files copied in under the given names (e.g. ``vocab.txt``).
    """
    final = Path(model_dir) / f"{PREFIX}{step:08d}"
    with atomic_folder(final) as tmp:  # replaces a folder of the same step a crash left before pruning
        save_model(model, str(tmp / MODEL_FILE))
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        written = {"schema_version": SCHEMA_VERSION, **_encode(state)}
        (tmp / STATE_FILE).write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
        for name, source in files.items():
            shutil.copyfile(source, tmp / name)
    for old in checkpoints(model_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def read_state(checkpoint: Path) -> dict[str, Any]:
    """Return the trainer state of a checkpoint, generator states decoded back to tensors."""
    return _decode(json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8")))


def read_config(checkpoint: Path) -> dict[str, Any]:
    """Return the run config a checkpoint was written with."""
    path = Path(checkpoint) / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"{checkpoint}: not a linctl checkpoint (no {CONFIG_FILE})")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def check_model(found: Path, model: Mapping[str, Any]) -> None:
    """Refuse a checkpoint made for another model than ``model`` (a dumped model config), naming the
    fields that differ."""
    theirs = read_config(found).get("model", {})
    differ = [
        f"{key}: {theirs.get(key)!r} there, {value!r} here"
        for key, value in model.items()
        if theirs.get(key) != value
    ]
    differ += [f"{key}: {theirs[key]!r} there, unset here" for key in theirs if key not in model]
    if differ:
        raise ConfigError(
            f"{found} is a checkpoint of another model ({'; '.join(differ)}); "
            f"use another model_dir or the checkpoint's model config"
        )


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load a checkpoint's weights into ``model``; every tensor must match by name and shape."""
    path = Path(checkpoint) / MODEL_FILE
    if not path.is_file():
        raise InputError(f"{checkpoint}: no {MODEL_FILE}")
    try:
        load_model(model, str(path), strict=True)
    except (RuntimeError, SafetensorError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"{path}: weights do not fit this model ({detail[:400]})") from None


def load_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Path, device: torch.device) -> None:
    """Restore the optimizer state saved beside the weights."""
    optimizer.load_state_dict(torch.load(Path(checkpoint) / OPTIMIZER_FILE, map_location=device))


def _encode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return {"__tensor__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return torch.load(io.BytesIO(base64.b64decode(value["__tensor__"])))
        return {key: _decode(item) for key, item in value.items()}
    return value
