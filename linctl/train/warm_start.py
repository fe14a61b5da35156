"""Start a run from pretrained weights: a linctl checkpoint folder or a Hugging Face BERT folder.

The model's body must be in the checkpoint, every tensor of the right shape; heads the checkpoint does
not have (a classifier's pooler and output layer after MLM pretraining) start from their initialisation,
and tensors the model has no use for (an MLM head when fine-tuning) are left out. The vocabulary comes
with the checkpoint: data tokenised with another one is refused.
"""

from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from linctl.atomic import sha256_file
from linctl.errors import InputError
from linctl.models import Model
from linctl.models.hf_bert import read_hf_bert
from linctl.train.checkpoint import MODEL_FILE, read_weights

HF_CONFIG, VOCAB = "config.json", "vocab.txt"
SHOWN = 8  # names listed in an error before "and N more"


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
    state, vocab = _read(source)
    own = model.state_dict()
    shapes = [
        f"{name} {tuple(state[name].shape)} there, {tuple(value.shape)} here"
        for name, value in own.items()
        if name in state and state[name].shape != value.shape
    ]
    missing = [name for name in own if name not in state and not name.startswith(type(model).heads)]
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
    model.load_state_dict({name: value for name, value in state.items() if name in own}, strict=False)
    return WarmStart(
        source,
        loaded=sum(name in own for name in state),
        fresh=[name for name in own if name not in state],
        ignored=[name for name in state if name not in own],
        vocab=vocab,
    )


def _read(source: Path) -> tuple[dict[str, Tensor], Path | None]:
    if (source / HF_CONFIG).is_file():
        found = read_hf_bert(source)
        return {**found.state_dict, **(found.pooler or {})}, found.vocab
    if (source / MODEL_FILE).is_file():
        state = read_weights(source, fix="give another --init-checkpoint")
        vocab = source / VOCAB
        return state, vocab if vocab.is_file() else None
    raise InputError(
        f"--init-checkpoint {source}: neither a linctl checkpoint ({MODEL_FILE}) nor a Hugging Face BERT "
        f"folder ({HF_CONFIG} with model.safetensors or pytorch_model.bin)"
    )


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more
