"""Import Hugging Face BERT checkpoints (Devlin et al., arXiv:1810.04805) as linctl encoder weights.

A Hugging Face BERT folder holds ``config.json`` and the weights in ``model.safetensors`` or
``pytorch_model.bin`` (or shards of either with their ``.index.json``), with ``vocab.txt`` beside them.
BERT is linctl's post-LN encoder with softmax attention: the same exact (erf) GELU, learned positions and
segment embeddings. Queries, keys and values become our fused ``qkv`` projection, stacked in that order.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from linctl.attention.softmax import SoftmaxAttention
from linctl.errors import ConfigError, InputError
from linctl.models.encoder import EncoderModel

CONFIG_FILE, VOCAB_FILE = "config.json", "vocab.txt"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# Tensors a BERT checkpoint may hold that no linctl model uses: the position-id buffer older versions
# saved, and the next-sentence-prediction head of BertForPreTraining.
IGNORED = re.compile(r"(bert\.)?embeddings\.position_ids|cls\.seq_relationship\.(weight|bias)")

_EMBEDDINGS = {
    "embeddings.word_embeddings.weight": "embeddings.tokens.weight",
    "embeddings.position_embeddings.weight": "embeddings.positions.weight",
    "embeddings.token_type_embeddings.weight": "embeddings.segments.weight",
    "embeddings.LayerNorm.weight": "embeddings.norm.weight",
    "embeddings.LayerNorm.bias": "embeddings.norm.bias",
}
_LAYER = {  # under encoder.layer.{i}. -> under blocks.{i}.
    "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "ffn.up",
    "output.dense": "ffn.down",
    "output.LayerNorm": "norm2",
}
_QKV = ("query", "key", "value")  # the order of our fused projection's rows
_MLM = {
    "cls.predictions.transform.dense.weight": "mlm.dense.weight",
    "cls.predictions.transform.dense.bias": "mlm.dense.bias",
    "cls.predictions.transform.LayerNorm.weight": "mlm.norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "mlm.norm.bias",
    "cls.predictions.bias": "mlm.decoder.bias",
}
_POOLER = {"pooler.dense.weight": "pooler.weight", "pooler.dense.bias": "pooler.bias"}
_OPTIONAL = re.compile(r"pooler\..*|cls\.predictions\.decoder\..*")  # present or not, never missing
_HEAD = re.compile(r"cls\.predictions\.(transform\..*|bias)")  # the MLM head: all of it or none


@dataclass(frozen=True)
class HfBert:
    """A Hugging Face BERT checkpoint in linctl's terms.

    Attributes:
        config: the encoder config it corresponds to.
        state_dict: weights by ``EncoderModel`` parameter name; ``mlm.*`` only when ``has_mlm_head``
            (load with ``strict=False`` otherwise). ``mlm.decoder.weight`` is the token embedding, tied.
        pooler: the pooler's dense layer as ``pooler.weight``/``pooler.bias`` (``ClassifierModel``'s names),
            None when the checkpoint has none (BertForMaskedLM).
        vocab: the folder's ``vocab.txt``, None when absent.
        ignored: the checkpoint's tensors no linctl model uses (``IGNORED``), by their names there.
    """

    config: EncoderModel.Config
    state_dict: dict[str, Tensor]
    pooler: dict[str, Tensor] | None
    vocab: Path | None
    ignored: tuple[str, ...] = ()

    @property
    def has_mlm_head(self) -> bool:
        return "mlm.dense.weight" in self.state_dict


def read_hf_bert(folder: Path) -> HfBert:
    """Read the Hugging Face BERT checkpoint in ``folder`` (BertModel, BertForMaskedLM, BertForPreTraining).

    Tensor names may carry the ``bert.`` prefix of the models with heads or none (BertModel); the legacy
    ``LayerNorm.gamma``/``beta`` names are read as ``weight``/``bias``. Every tensor must be one linctl
    uses, with the shape the config implies, except those ``IGNORED`` (``position_ids``, the NSP head).

    Raises:
        InputError: no config or weights; tensors missing, left over or of the wrong shape (all named);
            an MLM decoder that differs from the token embeddings.
        ConfigError: a config linctl cannot reproduce exactly: another model_type, hidden_act or
            position_embedding_type, a decoder, untied embeddings, sizes linctl refuses.
    """
    folder = Path(folder)
    config = read_hf_config(folder)
    path, tensors = read_weight_files(folder)
    state, pooler = _convert(tensors, config, path)
    vocab = folder / VOCAB_FILE
    ignored = tuple(name for name in tensors if IGNORED.fullmatch(name))
    return HfBert(config, state, pooler, vocab if vocab.is_file() else None, ignored)


def read_hf_config(folder: Path) -> EncoderModel.Config:
    """Return the encoder config of the Hugging Face BERT in ``folder`` (its ``config.json`` only)."""
    path = Path(folder) / CONFIG_FILE
    return _encoder_config(read_config_json(path), path)


def read_config_json(path: Path) -> dict[str, Any]:
    """Return the JSON object of a Hugging Face ``config.json``; refuse a missing or malformed one."""
    if not path.is_file():
        raise InputError(f"{path.parent}: not a Hugging Face checkpoint (no {path.name})")
    try:
        hf = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(hf, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(hf).__name__}")
    return hf


def _encoder_config(hf: dict[str, Any], path: Path) -> EncoderModel.Config:
    """Return the encoder config of a BERT ``config.json``; refuse what would compute something else."""
    problems = []
    if hf.get("model_type", "bert") != "bert":
        problems.append(f"model_type is {hf['model_type']!r}, only 'bert' is supported")
    if hf.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act is {hf['hidden_act']!r}, only 'gelu' (exact erf GELU) is supported")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        problems.append(
            f"position_embedding_type is {hf['position_embedding_type']!r}, only 'absolute' is supported"
        )
    for flag in ("is_decoder", "add_cross_attention"):
        if hf.get(flag):
            problems.append(f"{flag} is true, only bidirectional encoders are supported")
    if hf.get("tie_word_embeddings") is False:
        problems.append("tie_word_embeddings is false; linctl's MLM decoder is tied to the token embeddings")
    missing = [key for key in ("vocab_size", "hidden_size", "num_attention_heads") if key not in hf]
    missing += [key for key in ("num_hidden_layers", "intermediate_size") if key not in hf]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if problems:
        raise ConfigError(f"{path}: {'; '.join(problems)}")
    values = {
        "vocab_size": hf["vocab_size"],
        "d_model": hf["hidden_size"],
        "n_heads": hf["num_attention_heads"],
        "n_layers": hf["num_hidden_layers"],
        "d_ff": hf["intermediate_size"],
        "max_seq_length": hf.get("max_position_embeddings", 512),
        "segment_vocab_size": hf.get("type_vocab_size", 2),
        "layer_norm_eps": hf.get("layer_norm_eps", 1e-12),
        "dropout": hf.get("hidden_dropout_prob", 0.1),
        "norm_first": False,
        "attention": SoftmaxAttention.Config(dropout=hf.get("attention_probs_dropout_prob", 0.1)),
    }
    try:
        return EncoderModel.Config(**values)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: not a valid linctl encoder ({detail})") from None


def read_weight_files(folder: Path) -> tuple[Path, dict[str, Tensor]]:
    """Return the weight file (or index) of ``folder`` and its tensors by name, safetensors first."""
    for name in WEIGHT_FILES:
        index = folder / f"{name}.index.json"
        if (folder / name).is_file():
            return folder / name, _load(folder / name)
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
                raise InputError(f"{index}: not a weight index (no weight_map object)") from None
            tensors: dict[str, Tensor] = {}
            for shard in shards:
                tensors.update(_load(folder / shard))
            return index, tensors
    raise InputError(f"{folder}: no weights; expected {' or '.join(WEIGHT_FILES)}")


def _load(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise InputError(f"{path}: weight shard not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # both loaders raise a variety of types on corrupt files
        raise InputError(f"{path}: cannot read weights ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected a state dict, found {type(loaded).__name__}")
    return loaded


def _expected_shapes(cfg: EncoderModel.Config) -> dict[str, tuple[int, ...]]:
    """Return the Hugging Face names (no prefix) and shapes a BERT of ``cfg`` has, heads included."""
    C, F = cfg.d_model, cfg.d_ff
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, C),
        "embeddings.position_embeddings.weight": (cfg.max_seq_length, C),
        "embeddings.token_type_embeddings.weight": (cfg.segment_vocab_size, C),
        "embeddings.LayerNorm.weight": (C,),
        "embeddings.LayerNorm.bias": (C,),
    }
    sizes = {"attention.self.query": (C, C), "attention.self.key": (C, C), "attention.self.value": (C, C)}
    sizes |= {"attention.output.dense": (C, C), "attention.output.LayerNorm": (C,)}
    sizes |= {"intermediate.dense": (F, C), "output.dense": (C, F), "output.LayerNorm": (C,)}
    for i in range(cfg.n_layers):
        for module, shape in sizes.items():
            shapes[f"encoder.layer.{i}.{module}.weight"] = shape
            shapes[f"encoder.layer.{i}.{module}.bias"] = shape[:1]
    heads = {"pooler.dense": (C, C), "cls.predictions.transform.dense": (C, C)}
    heads |= {"cls.predictions.transform.LayerNorm": (C,), "cls.predictions.decoder": (cfg.vocab_size, C)}
    for module, shape in heads.items():
        shapes[f"{module}.weight"] = shape
        shapes[f"{module}.bias"] = shape[:1]
    shapes["cls.predictions.bias"] = (cfg.vocab_size,)
    return shapes


def _canonical(name: str) -> str:
    """Return a tensor name without the ``bert.`` prefix and with legacy ``gamma``/``beta`` renamed."""
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name.removeprefix("bert."))
    return re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)


def _convert(
    tensors: dict[str, Tensor], cfg: EncoderModel.Config, path: Path
) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """Check ``tensors`` against ``cfg`` and rename them: (encoder state dict, pooler or None)."""
    prefixed = any(name.startswith("bert.") for name in tensors)
    expected = _expected_shapes(cfg)
    found: dict[str, Tensor] = {}
    extra = []
    for name, tensor in tensors.items():
        if IGNORED.fullmatch(name):
            continue
        key = _canonical(name)
        # The heads' tensors (cls.*) carry no prefix; the body's tensors all carry it or none do.
        placed = name.startswith("cls.") if key.startswith("cls.") else name.startswith("bert.") == prefixed
        if key in expected and key not in found and placed:
            found[key] = tensor
        else:
            extra.append(name)
    has_head = any(key.startswith("cls.") for key in found)
    needed = [
        key for key in expected if not _OPTIONAL.fullmatch(key) and (has_head or not _HEAD.fullmatch(key))
    ]
    prefix = "bert." if prefixed else ""
    missing = [key if key.startswith("cls.") else prefix + key for key in needed if key not in found]
    if "cls.predictions.decoder.bias" in found and "cls.predictions.bias" not in found and has_head:
        missing.remove("cls.predictions.bias")  # older checkpoints name the decoder's bias only there
    wrong = [
        f"{key} {tuple(found[key].shape)} (expected {expected[key]})"
        for key in found
        if tuple(found[key].shape) != expected[key]
    ]
    pooler_parts = [key for key in _POOLER if key in found]
    if len(pooler_parts) == 1:
        missing.append(prefix + next(key for key in _POOLER if key not in found))
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"left over {', '.join(extra)}"] if extra else []
    problems += [f"wrong shape {', '.join(wrong)}"] if wrong else []
    if problems:
        raise InputError(f"{path}: not a BERT of its config.json ({'; '.join(problems)})")

    found = {key: tensor.float() if tensor.is_floating_point() else tensor for key, tensor in found.items()}
    state = {new: found[old] for old, new in _EMBEDDINGS.items()}
    if not cfg.segment_vocab_size:  # linctl then has no segment embedding at all
        del state["embeddings.segments.weight"]
    for i in range(cfg.n_layers):
        hf, ours = f"encoder.layer.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            stacked = [found[f"{hf}attention.self.{name}.{part}"] for name in _QKV]
            state[f"{ours}attention.qkv.{part}"] = torch.cat(stacked)  # (3C, C) / (3C,): q, k, v
            for old, new in _LAYER.items():
                state[f"{ours}{new}.{part}"] = found[f"{hf}{old}.{part}"]
    if has_head:
        _check_tied(found, path)
        if "cls.predictions.bias" not in found:
            found["cls.predictions.bias"] = found["cls.predictions.decoder.bias"]
        state |= {new: found[old] for old, new in _MLM.items()}
        state["mlm.decoder.weight"] = state["embeddings.tokens.weight"]
    pooler = {new: found[old] for old, new in _POOLER.items()} if pooler_parts else None
    return state, pooler


def _check_tied(found: dict[str, Tensor], path: Path) -> None:
    """Refuse an MLM decoder that differs from the token embeddings (linctl ties them)."""
    pairs = [("cls.predictions.decoder.weight", "embeddings.word_embeddings.weight")]
    pairs.append(("cls.predictions.decoder.bias", "cls.predictions.bias"))
    for name, twin in pairs:
        if name in found and twin in found and not torch.equal(found[name], found[twin]):
            raise InputError(
                f"{path}: {name} differs from {twin}; linctl ties them, so untied heads cannot be imported"
            )
