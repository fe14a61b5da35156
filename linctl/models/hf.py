"""The Hugging Face checkpoints linctl imports, by the ``model_type`` of their ``config.json``."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from linctl.errors import ConfigError
from linctl.models.base import ModelConfig
from linctl.models.hf_bert import CONFIG_FILE, read_config_json, read_hf_bert, read_hf_config
from linctl.models.hf_funnel import read_hf_funnel, read_hf_funnel_config


@dataclass(frozen=True)
class Imported:
    """A checkpoint in linctl's terms: its model config, tensors by linctl's names (heads included), its
    vocabulary and the names of its tensors no linctl model uses."""

    config: ModelConfig
    state_dict: dict[str, Tensor]
    vocab: Path | None
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class Importer:
    """How to read one ``model_type``."""

    read: Callable[[Path], Imported]
    config: Callable[[Path], ModelConfig]  # from config.json alone
    sizes: tuple[str, ...]  # model fields a run's model section may leave to the checkpoint
    uncompared: frozenset[str] = frozenset()  # fields a warm start does not compare with the run's


def _bert(folder: Path) -> Imported:
    found = read_hf_bert(folder)
    return Imported(found.config, {**found.state_dict, **(found.pooler or {})}, found.vocab, found.ignored)


def _funnel(folder: Path) -> Imported:
    found = read_hf_funnel(folder)
    return Imported(found.config, found.state_dict, found.vocab, found.ignored)


# The model fields a run's model section may leave to a checkpoint's config.json
BERT_SIZES = ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_length", "segment_vocab_size",
              "layer_norm_eps", "norm_first")  # fmt: skip
FUNNEL_SIZES = ("vocab_size", "d_model", "n_heads", "d_ff", "layer_norm_eps", "activation", "block_sizes",
                "block_repeats", "n_decoder_layers", "pooling_type", "attention_type", "separate_cls",
                "truncate_seq", "pool_q_only")  # fmt: skip

IMPORTERS: dict[str, Importer] = {
    "bert": Importer(_bert, read_hf_config, BERT_SIZES),
    # relative positions: a funnel has no length built in, so max_seq_length is the run's to choose
    "funnel": Importer(
        _funnel,
        lambda folder: read_hf_funnel_config(folder, decoder=True),
        FUNNEL_SIZES,
        frozenset({"max_seq_length"}),
    ),
}


def importer(folder: Path) -> Importer:
    """Return the importer of the Hugging Face checkpoint in ``folder`` (no ``model_type``: BERT)."""
    path = Path(folder) / CONFIG_FILE
    hf: dict[str, Any] = read_config_json(path)
    model_type = hf.get("model_type", "bert")
    if model_type not in IMPORTERS:
        raise ConfigError(f"{path}: model_type is {model_type!r}; linctl imports {', '.join(IMPORTERS)}")
    return IMPORTERS[model_type]
