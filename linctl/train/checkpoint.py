"""Checkpoints: one folder per step, written under a temporary name and renamed into place.

``checkpoint-00001000/`` holds ``model.safetensors``, ``optimizer.pt``, ``trainer_state.json`` (step,
generator states, data position), ``config.yaml`` (the run's config) and the files the task needs to use
the model again (the vocabulary). A folder under its final name is complete. An FSDP run writes its model
and optimizer as the processes' shards (torch.distributed.checkpoint) in ``sharded/`` instead of the first
two files; every process writes its own shard into the one temporary folder, rank 0 the rest.
"""

import base64
import io
import json
import pickle
import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from linctl.atomic import TMP_MARK, atomic_folder
from linctl.errors import ConfigError, InputError, OutputError
from linctl.train.distributed import Job

PREFIX = "checkpoint-"
_NAME = re.compile(rf"{PREFIX}(\d+)")
MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CONFIG_FILE = (
    "model.safetensors",
    "optimizer.pt",
    "trainer_state.json",
    "config.yaml",
)
SHARDED_DIR = "sharded"  # FSDP: model and optimizer as torch.distributed.checkpoint shards, no single files
SHARDED_METADATA = f"{SHARDED_DIR}/.metadata"
SCHEMA_VERSION = 1  # of trainer_state.json
FIX = "delete the checkpoint folder {folder} to use the one before it, or train again"
T = TypeVar("T")


def checkpoints(model_dir: Path) -> list[Path]:
    """Return the complete checkpoint folders of ``model_dir``, oldest first."""
    if not Path(model_dir).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(model_dir).iterdir() if (m := _NAME.fullmatch(p.name))]
    # a folder under its final name was complete when renamed into place: a damaged one is listed (and
    # refused when read) rather than skipped, so that no run falls back to an older one unasked
    return [path for _, path in sorted(found) if path.is_dir()]


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
    job: Job = Job(),  # noqa: B008 (frozen: one process)
) -> Path:
    """Write the checkpoint of ``step`` atomically and delete all but the newest ``keep``; every process
    of a torchrun job calls it (rank 0 writes the files, each process its shard of an FSDP model).

    Args:
        state: JSON-able trainer state; tensors among its values (generator states) are stored as base64.
        files: extra files copied in under the given names (e.g. ``vocab.txt``).
    """
    final = Path(model_dir) / f"{PREFIX}{step:08d}"
    sharded = job.sharded(model)
    if not job.main:
        tmp = job.broadcast(None)
        if sharded:
            _save_sharded(model, optimizer, tmp)
        job.barrier()  # rank 0 renames the folder into place
        return final
    try:
        with atomic_folder(final) as tmp:  # replaces a folder of the same step a crash left before pruning
            job.broadcast(tmp)
            if sharded:
                _save_sharded(model, optimizer, tmp)
            else:
                save_model(model, str(tmp / MODEL_FILE))
                torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
            written = {"schema_version": SCHEMA_VERSION, **_encode(state)}
            (tmp / STATE_FILE).write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
            for name, source in files.items():
                shutil.copyfile(source, tmp / name)
    except OSError as exc:  # a full disk, a lost mount: atomic_folder has removed the partial folder
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc.strerror or exc
        raise OutputError(
            f"checkpoint {final} could not be written ({detail}); nothing of it was left, the newest "
            f"checkpoint is {latest(model_dir) or 'none'}; fix that (e.g. free disk space in "
            f"{Path(model_dir)}) and run train again to resume"
        ) from None
    job.barrier()
    for old in checkpoints(model_dir)[:-keep]:
        shutil.rmtree(old)
    return final


def _save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    weights, moments = get_state_dict(model, optimizer)
    dcp.save({"model": weights, "optimizer": moments}, checkpoint_id=folder / SHARDED_DIR)


def is_sharded(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` holds an FSDP run's shards rather than single weight and optimizer files."""
    return (Path(checkpoint) / SHARDED_DIR).is_dir()


def check_strategy(found: Path, sharded: bool) -> None:
    """Refuse to resume an FSDP checkpoint without FSDP, or a single-file one with FSDP."""
    if is_sharded(found) and not sharded:
        raise ConfigError(
            f"{found} holds an FSDP run's shards ({SHARDED_DIR}/), which only FSDP resumes; run under "
            f"torchrun with train.strategy fsdp, or use another model_dir"
        )
    if sharded and not is_sharded(found):
        raise ConfigError(
            f"{found} holds the weights of one process or DDP ({MODEL_FILE}), which FSDP does not resume; "
            f"set train.strategy ddp, or use another model_dir"
        )


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Path) -> None:
    """Load an FSDP checkpoint's shards into the sharded ``model`` and its ``optimizer`` (the number of
    processes may differ from the run's that wrote it: torch.distributed.checkpoint reshards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    weights, moments = get_state_dict(model, optimizer)
    found = {"model": weights, "optimizer": moments}
    folder = Path(checkpoint) / SHARDED_DIR
    try:
        dcp.load(found, checkpoint_id=folder)
    except (CheckpointException, OSError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:400]
        raise InputError(
            f"checkpoint shards {folder} cannot be read ({detail}); {FIX.format(folder=checkpoint)}"
        ) from None
    set_state_dict(model, optimizer, model_state_dict=found["model"], optim_state_dict=found["optimizer"])


class _Damaged(Exception):
    """What is wrong with a checkpoint file, as the end of a sentence naming it."""


def read_file(checkpoint: Path, name: str, parse: Callable[[Path], T], fix: str = FIX) -> T:
    """Return ``parse(checkpoint / name)``: the one way a checkpoint file is read.

    A missing or unreadable file, or one ``parse`` finds damaged (it raises ``_Damaged``), is an
    ``InputError`` naming the file, what is wrong with it and ``fix`` (``{folder}`` is the checkpoint).
    """
    path = Path(checkpoint) / name
    try:
        if not path.is_file():
            raise _Damaged("is missing")
        return parse(path)
    except _Damaged as exc:
        problem = str(exc)
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or exc})"
    raise InputError(f"checkpoint file {path} {problem}; {fix.format(folder=Path(checkpoint))}") from None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """Return the trainer state of a checkpoint, generator states decoded back to tensors."""
    return read_file(checkpoint, STATE_FILE, _parse_state)


def read_config(checkpoint: Path) -> dict[str, Any]:
    """Return the run config a checkpoint was written with."""
    if not (Path(checkpoint) / CONFIG_FILE).exists():
        raise InputError(f"{checkpoint}: not a linctl checkpoint (no {CONFIG_FILE})")
    return read_file(checkpoint, CONFIG_FILE, _parse_config)


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


def check(found: Path, model: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse a checkpoint of another model than ``model`` or with a damaged config, state or weights file
    (reading no tensor, so that a run fails before it does any work); return its trainer state."""
    check_model(found, model)
    state = read_state(found)
    if is_sharded(found):
        read_file(found, SHARDED_METADATA, _check_sharded)
    else:
        read_file(found, MODEL_FILE, _check_weights)
    return state


def load_weights(model: nn.Module, checkpoint: Path) -> None:
    """Load a checkpoint's weights into ``model`` (an FSDP run's shards too, gathered whole in this one
    process); every tensor must match by name and shape."""
    if is_sharded(checkpoint):
        weights = read_weights(checkpoint)
        try:
            model.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise InputError(f"{checkpoint}: weights do not fit this model ({detail[:400]})") from None
        return

    def parse(path: Path) -> None:
        try:
            load_model(model, str(path), strict=True)
        except SafetensorError as exc:
            raise _Damaged(f"is truncated or not a safetensors file ({exc})") from None
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())
            raise InputError(f"{path}: weights do not fit this model ({detail[:400]})") from None

    read_file(checkpoint, MODEL_FILE, parse)


def read_weights(checkpoint: Path, fix: str = FIX) -> dict[str, torch.Tensor]:
    """Return a checkpoint's tensors by name (an FSDP run's shards gathered whole)."""
    if is_sharded(checkpoint):
        return read_file(checkpoint, SHARDED_METADATA, _parse_sharded_weights, fix)
    return read_file(checkpoint, MODEL_FILE, _parse_weights, fix)


def load_optimizer(optimizer: torch.optim.Optimizer, checkpoint: Path, device: torch.device) -> None:
    """Restore the optimizer state saved beside the weights."""

    def parse(path: Path) -> None:
        try:
            saved = torch.load(path, map_location=device)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise _Damaged("is truncated or not a torch file") from exc
        try:
            optimizer.load_state_dict(saved)
        except (ValueError, KeyError, TypeError) as exc:
            raise _Damaged(f"does not fit this model's optimizer ({exc})") from exc

    read_file(checkpoint, OPTIMIZER_FILE, parse)


def _parse_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _Damaged(f"is not valid JSON ({exc})") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "rng" not in state:
        raise _Damaged("is not a trainer state (an object with an integer step and rng)")
    try:
        state = _decode(state)
    except (ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise _Damaged("holds a generator state that is not a torch tensor") from exc
    rng = state["rng"]
    if not isinstance(rng, dict) or not all(isinstance(rng.get(key), torch.Tensor) for key in ("cpu", *rng)):
        raise _Damaged("is not a trainer state (rng holds no cpu generator state, or one not a tensor)")
    return state


def _parse_config(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise _Damaged(f"is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise _Damaged(f"is not a run config (a mapping), but {type(config).__name__}")
    return config


def _check_weights(path: Path) -> None:
    try:
        with safe_open(str(path), "pt"):  # reads the header, checks it covers the whole file
            pass
    except SafetensorError as exc:
        raise _Damaged(f"is truncated or not a safetensors file ({exc})") from None


def _check_sharded(path: Path) -> None:
    if path.stat().st_size == 0:
        raise _Damaged("is empty")


def _parse_sharded_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read the model's tensors of the shards whose metadata is ``path``, whole, in one process."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import CheckpointException
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    reader = dcp.FileSystemReader(str(path.parent))
    try:
        stored = reader.read_metadata().state_dict_metadata
        prefix = "model."
        weights = {
            key.removeprefix(prefix): torch.empty(tuple(meta.size), dtype=meta.properties.dtype)
            for key, meta in stored.items()
            if key.startswith(prefix) and isinstance(meta, TensorStorageMetadata)
        }
        with warnings.catch_warnings():  # "… assuming the intent is to load in a single process": it is
            warnings.simplefilter("ignore", UserWarning)
            dcp.load({"model": weights}, storage_reader=reader, no_dist=True)
    except (CheckpointException, OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise _Damaged(f"or its shards cannot be read ({' '.join(str(exc).split())[:300]})") from None
    return weights


def _parse_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise _Damaged(f"is truncated or not a safetensors file ({exc})") from None


def _encode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        buffer = io.BytesIO()
        torch.save(value, buffer)
        return {"__tensor__": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, Mapping):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return torch.load(io.BytesIO(base64.b64decode(value["__tensor__"])))
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item) for item in value]
    return value
