"""Start a run from pretrained weights: a linctl checkpoint folder or a Hugging Face BERT or Funnel folder.

The checkpoint's model config (a Hugging Face ``config.json``, a linctl checkpoint's ``config.yaml``) must
compute what the run's model computes: every field that does (sizes, segments, norms, the attention kind and
its fields; not dropout, labels or the attention implementation) is compared and a difference refused. The
model's body must be in the checkpoint, every tensor of the right shape; heads the checkpoint does not have
(a classifier's pooler and output layer after MLM pretraining) start from their initialisation, and tensors
the model has no use for (an MLM head when fine-tuning) are left out and named. Tensors a model shares
(tied embeddings, a layerwise Linformer projection) are stored once and loaded into every name they have.
The vocabulary comes with the checkpoint: data tokenised with another one is refused.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import Tensor

from linctl.atomic import sha256_file
from linctl.errors import ConfigError, InputError
from linctl.models import Model, ModelSpec
from linctl.models.hf import importer
from linctl.train.checkpoint import (
    CONFIG_FILE,
    MODEL_FILE,
    SHARDED_DIR,
    is_sharded,
    read_config,
    read_weights,
)

HF_CONFIG, VOCAB = "config.json", "vocab.txt"
SHOWN = 8  # names listed in an error before "and N more"
# Model fields that do not change what a model computes from given weights (in eval), or only its heads
UNCOMPARED = {"kind", "dropout", "classifier_dropout", "num_labels", "attention.dropout", "attention.impl"}


@dataclass
class WarmStart:
    """What ``warm_start`` loaded."""

    source: Path
    loaded: int  # tensors taken from the checkpoint
    fresh: list[str] = field(default_factory=list)  # this model's tensors the checkpoint lacks (heads)
    ignored: list[str] = field(default_factory=list)  # the checkpoint's tensors this model has no use for
    vocab: Path | None = None


def warm_start(model: Model, source: Path, data_vocab: Path | None) -> WarmStart:
    """Load ``source``'s weights into ``model``; ``data_vocab`` is the vocabulary the data was made with."""
    source = Path(source)
    state, vocab, theirs, unused = _read(source)
    if theirs is not None:
        uncompared = importer(source).uncompared if (source / HF_CONFIG).is_file() else frozenset()
        _check_config(source, theirs, model.cfg.model_dump(mode="json"), uncompared)
    own = model.state_dict()
    stored = _stored_names(own, state)  # this model's name -> the checkpoint's name of the same tensor
    shapes = [
        f"{name} {tuple(state[stored[name]].shape)} there, {tuple(value.shape)} here"
        for name, value in own.items()
        if name in stored and state[stored[name]].shape != value.shape
    ]
    missing = [name for name in own if name not in stored and not name.startswith(type(model).heads)]
    if shapes or missing:
        parts = ([f"missing {_listed(missing)}"] if missing else []) + (
            [f"shapes {_listed(shapes)}"] if shapes else []
        )
        raise InputError(f"--init-checkpoint {source}: its tensors do not fit the model: {'; '.join(parts)}")
    if vocab is not None and data_vocab is not None and sha256_file(vocab) != sha256_file(data_vocab):
        raise InputError(
            f"--init-checkpoint {source}: its vocabulary {vocab} differs from the data's {data_vocab}; "
            f"prepare the data with --vocab-file {vocab}"
        )
    model.load_state_dict({name: state[there] for name, there in stored.items()}, strict=False)
    used = set(stored.values())
    return WarmStart(
        source,
        loaded=len(used),
        fresh=[name for name in own if name not in stored],
        ignored=[name for name in state if name not in used] + unused,
        vocab=vocab,
    )


def _stored_names(own: dict[str, Tensor], state: dict[str, Tensor]) -> dict[str, str]:
    """Map each of ``own``'s names to the name ``state`` holds its tensor under: its own, or that of a tensor
    it shares storage with (safetensors stores a shared tensor once, under one of its names)."""
    aliases: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for name, value in own.items():
        aliases.setdefault((value.data_ptr(), tuple(value.shape)), []).append(name)
    stored = {}
    for names in aliases.values():
        there = [name for name in names if name in state]
        for name in names:
            if name in state or there:
                stored[name] = name if name in state else there[0]
    return stored


def _check_config(
    source: Path, theirs: dict[str, Any], ours: dict[str, Any], uncompared: frozenset[str] = frozenset()
) -> None:
    """Refuse a checkpoint whose model computes something else than ``ours``, naming every field but
    ``uncompared`` ones."""
    there, here = _flat(theirs), _flat(ours)
    # the attention's fields are compared whatever kind; the model's only where both families have them
    keys = [key for key in here if key in there or key.startswith("attention.")]
    keys += [key for key in there if key.startswith("attention.") and key not in here]
    differ = [
        f"{key}: {_shown(there, key)} there, {_shown(here, key)} here"
        for key in keys
        if key not in UNCOMPARED | uncompared and there.get(key, _UNSET) != here.get(key, _UNSET)
    ]
    if differ:
        raise ConfigError(
            f"--init-checkpoint {source}: its model differs from the run's ({'; '.join(differ)}); "
            f"set the run's model to the checkpoint's"
        )


_UNSET = object()


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(values: dict[str, Any], key: str) -> str:
    return repr(values[key]) if key in values else "unset"


def _read(source: Path) -> tuple[dict[str, Tensor], Path | None, dict[str, Any] | None, list[str]]:
    """Return the tensors of ``source``, its vocabulary, its model config (None when it has none) and the
    names of its tensors no linctl model uses."""
    if (source / HF_CONFIG).is_file():
        found = importer(source).read(source)
        return found.state_dict, found.vocab, found.config.model_dump(mode="json"), list(found.ignored)
    if (source / MODEL_FILE).is_file() or is_sharded(source):  # one process's or DDP's, or FSDP's shards
        state = read_weights(source, fix="give another --init-checkpoint")
        vocab = source / VOCAB
        config = _model_config(source) if (source / CONFIG_FILE).is_file() else None
        return state, vocab if vocab.is_file() else None, config, []
    raise InputError(
        f"--init-checkpoint {source}: neither a linctl checkpoint ({MODEL_FILE} or {SHARDED_DIR}/) nor a "
        f"Hugging Face BERT or Funnel folder ({HF_CONFIG} with model.safetensors or pytorch_model.bin)"
    )


def _model_config(source: Path) -> dict[str, Any]:
    """Return the model config of a linctl checkpoint, with today's defaults for fields it predates."""
    try:
        return (
            TypeAdapter(ModelSpec).validate_python(read_config(source).get("model")).model_dump(mode="json")
        )
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(
            f"--init-checkpoint {source / CONFIG_FILE}: its model section is no linctl model "
            f"({detail[:400]}); give another --init-checkpoint"
        ) from None


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
