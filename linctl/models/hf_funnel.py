"""Import Hugging Face Funnel-Transformer checkpoints (Dai et al., arXiv:2006.03236) as linctl funnel weights.

A folder holds ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (or shards), with
``vocab.txt`` beside them. A checkpoint with a decoder (``FunnelModel``, ``FunnelForMaskedLM``,
``FunnelForPreTraining``) becomes a ``funnel`` model; one without (``FunnelBaseModel``,
``FunnelForSequenceClassification``) a ``funnel-classifier``. Queries, keys and values become our fused
``qkv`` projection (the query has no bias there: ours starts at zero), the relative-attention parameters
``r_w_bias``, ``r_r_bias``, ``r_kernel``, ``r_s_bias`` and ``seg_embed`` each layer's ``RelativeBias``.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from linctl.attention.softmax import SoftmaxAttention
from linctl.errors import ConfigError, InputError
from linctl.models.funnel import FunnelClassifierModel, FunnelConfig, FunnelModel
from linctl.models.hf_bert import CONFIG_FILE, VOCAB_FILE, read_config_json, read_weight_files

ACTIVATIONS = ("gelu_new", "gelu", "relu")  # hidden_act values linctl computes exactly
# Tensors of a checkpoint that no linctl funnel uses: ELECTRA's discriminator head (FunnelForPreTraining)
# and the heads of token classification and question answering.
IGNORED = re.compile(r"(discriminator_predictions|classifier|qa_outputs)\.[\w.]+")
_ATTENTION = {  # under attention. -> the RelativeBias's names
    "r_w_bias": "content_bias",
    "r_r_bias": "position_bias",
    "r_kernel": "position_kernel",
    "r_s_bias": "segment_bias",
    "seg_embed": "segment_embed",
}
_LAYER = {  # -> under the Block
    "attention.post_proj": "attention.out",
    "attention.layer_norm": "norm1",
    "ffn.linear_1": "ffn.up",
    "ffn.linear_2": "ffn.down",
    "ffn.layer_norm": "norm2",
}
_CLASSIFIER = {"classifier.linear_hidden": "pooler", "classifier.linear_out": "head"}


@dataclass(frozen=True)
class HfFunnel:
    """A Hugging Face Funnel checkpoint in linctl's terms.

    Attributes:
        config: the model config it corresponds to (``funnel`` with a decoder, else ``funnel-classifier``).
        state_dict: weights by linctl parameter name: the body, and the heads the checkpoint has (the MLM
            output's bias; a sequence classifier's pooler and output layer). ``mlm.weight`` is the token
            embedding, tied.
        vocab: the folder's ``vocab.txt``, None when absent.
        ignored: the checkpoint's tensors no linctl model uses, by their names there.
    """

    config: FunnelModel.Config | FunnelClassifierModel.Config
    state_dict: dict[str, Tensor]
    vocab: Path | None
    ignored: tuple[str, ...] = ()


def read_hf_funnel(folder: Path) -> HfFunnel:
    """Read the Hugging Face Funnel checkpoint in ``folder``.

    Raises:
        InputError: no config or weights; tensors missing, left over or of the wrong shape (all named);
            an MLM output that differs from the token embeddings.
        ConfigError: a config linctl cannot reproduce exactly (another model_type or hidden_act, heads
            whose sizes do not fill d_model, activation dropout, untied embeddings).
    """
    folder = Path(folder)
    path = folder / CONFIG_FILE
    hf = read_config_json(path)
    weights_path, tensors = read_weight_files(folder)
    prefixed = any(name.startswith("funnel.") for name in tensors)
    body = {name.removeprefix("funnel."): t for name, t in tensors.items() if name.startswith("funnel.")}
    if not prefixed:
        body = dict(tensors)
    heads = {name: t for name, t in tensors.items() if prefixed and not name.startswith("funnel.")}
    decoder = any(name.startswith("decoder.") for name in body)
    classifier = heads.get("classifier.linear_out.weight")
    num_labels = None if classifier is None or decoder else classifier.size(0)
    config = read_hf_funnel_config(folder, decoder, num_labels, hf)
    state, ignored = _convert(body, heads, config, weights_path, "funnel." if prefixed else "")
    vocab = folder / VOCAB_FILE
    return HfFunnel(config, state, vocab if vocab.is_file() else None, tuple(ignored))


def read_hf_funnel_config(
    folder: Path, decoder: bool, num_labels: int | None = None, hf: dict[str, Any] | None = None
) -> FunnelModel.Config | FunnelClassifierModel.Config:
    """Return the linctl config of the Hugging Face Funnel in ``folder``: ``funnel`` with its decoder when
    ``decoder``, else ``funnel-classifier`` (``num_labels`` from its head, else from ``config.json``)."""
    path = Path(folder) / CONFIG_FILE
    hf = read_config_json(path) if hf is None else hf
    problems = []
    if hf.get("model_type") != "funnel":
        problems.append(f"model_type is {hf.get('model_type')!r}, not 'funnel'")
    if hf.get("hidden_act", "gelu_new") not in ACTIVATIONS:
        problems.append(f"hidden_act is {hf['hidden_act']!r}, linctl computes {', '.join(ACTIVATIONS)}")
    sizes = {key: hf.get(key, default) for key, default in (("d_model", 768), ("n_head", 12), ("d_head", 64))}
    if sizes["n_head"] * sizes["d_head"] != sizes["d_model"]:
        problems.append(
            f"n_head × d_head ({sizes['n_head']} × {sizes['d_head']}) is not d_model ({sizes['d_model']}); "
            f"linctl's heads split d_model"
        )
    if hf.get("activation_dropout", 0.0):
        problems.append(f"activation_dropout is {hf['activation_dropout']}; linctl's feed-forward has none")
    if hf.get("tie_word_embeddings") is False:
        problems.append("tie_word_embeddings is false; linctl's MLM output is tied to the token embeddings")
    if problems:
        raise ConfigError(f"{path}: {'; '.join(problems)}")
    values: dict[str, Any] = {
        "vocab_size": hf.get("vocab_size", 30522),
        "d_model": sizes["d_model"],
        "n_heads": sizes["n_head"],
        "d_ff": hf.get("d_inner", 3072),
        "max_seq_length": hf.get("max_position_embeddings", 512),
        "block_sizes": hf.get("block_sizes", [4, 4, 4]),
        "block_repeats": hf.get("block_repeats"),
        "layer_norm_eps": hf.get("layer_norm_eps", 1e-9),
        "dropout": hf.get("hidden_dropout", 0.1),
        "activation": hf.get("hidden_act", "gelu_new"),
        "attention": SoftmaxAttention.Config(dropout=hf.get("attention_dropout", 0.1)),
    }
    for key in ("pooling_type", "attention_type", "separate_cls", "truncate_seq", "pool_q_only"):
        if key in hf:
            values[key] = hf[key]
    try:
        if decoder:
            return FunnelModel.Config(**values, n_decoder_layers=hf.get("num_decoder_layers", 2))
        labels = num_labels or len(hf.get("id2label") or {}) or 2
        return FunnelClassifierModel.Config(**values, num_labels=labels)
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: not a valid linctl funnel ({detail})") from None


def _expected(cfg: FunnelConfig, decoder: bool) -> dict[str, tuple[int, ...]]:
    """Return the Hugging Face body names (no prefix) and shapes of a funnel of ``cfg``."""
    C, F, H, V = cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.vocab_size
    D = C // H
    shapes: dict[str, tuple[int, ...]] = {"embeddings.word_embeddings.weight": (V, C)}
    shapes |= {"embeddings.layer_norm.weight": (C,), "embeddings.layer_norm.bias": (C,)}
    layer = {f"attention.{name}": (C, C) for name in ("q_head", "k_head", "v_head", "post_proj")}
    layer |= {"attention.layer_norm": (C,), "ffn.linear_1": (F, C), "ffn.linear_2": (C, F)}
    layer |= {"ffn.layer_norm": (C,)}
    relative = {"r_w_bias": (H, D), "r_r_bias": (H, D), "r_kernel": (C, H, D), "r_s_bias": (H, D)}
    relative |= {"seg_embed": (2, H, D)}
    for prefix in _layer_prefixes(cfg, decoder):
        for module, shape in layer.items():
            shapes[f"{prefix}{module}.weight"] = shape
            if module != "attention.q_head":
                shapes[f"{prefix}{module}.bias"] = shape[:1]
        shapes |= {f"{prefix}attention.{name}": shape for name, shape in relative.items()}
    return shapes


def _layer_prefixes(cfg: FunnelConfig, decoder: bool) -> dict[str, str]:
    """Return each layer's Hugging Face prefix -> linctl's, "{}" standing for blocks or relative."""
    prefixes = {
        f"encoder.blocks.{b}.{i}.": f"encoder.{{}}.{b}.{i}."
        for b, n in enumerate(cfg.block_sizes)
        for i in range(n)
    }
    if decoder:
        layers = cfg.n_decoder_layers  # type: ignore[attr-defined]
        prefixes |= {f"decoder.layers.{i}.": f"decoder.{{}}.{i}." for i in range(layers)}
    return prefixes


def _convert(
    body: dict[str, Tensor], heads: dict[str, Tensor], cfg: FunnelConfig, path: Path, prefix: str
) -> tuple[dict[str, Tensor], list[str]]:
    """Check the tensors against ``cfg`` and rename them; return linctl's state dict and the ignored names."""
    decoder = isinstance(cfg, FunnelModel.Config)
    expected = _expected(cfg, decoder)
    head_shapes = {"lm_head.weight": (cfg.vocab_size, cfg.d_model), "lm_head.bias": (cfg.vocab_size,)}
    if not decoder:
        labels = cfg.num_labels  # type: ignore[attr-defined]
        head_shapes = {"classifier.linear_hidden.weight": (cfg.d_model, cfg.d_model)}
        head_shapes |= {"classifier.linear_hidden.bias": (cfg.d_model,)}
        head_shapes |= {
            "classifier.linear_out.weight": (labels, cfg.d_model),
            "classifier.linear_out.bias": (labels,),
        }
    ignored = [name for name in heads if name not in head_shapes and IGNORED.fullmatch(name)]
    extra = [prefix + name for name in body if name not in expected]
    extra += [name for name in heads if name not in head_shapes and name not in ignored]
    missing = [prefix + name for name in expected if name not in body]
    if "lm_head.bias" in heads or "lm_head.weight" in heads:
        missing += [name for name in ("lm_head.bias",) if name not in heads]
    present = [name for name in head_shapes if name in heads]
    if not decoder and 0 < len(present) < len(head_shapes):
        missing += [name for name in head_shapes if name not in heads]
    wrong = [
        f"{prefix + name} {tuple(body[name].shape)} (expected {shape})"
        for name, shape in expected.items()
        if name in body and tuple(body[name].shape) != shape
    ]
    wrong += [
        f"{name} {tuple(heads[name].shape)} (expected {shape})"
        for name, shape in head_shapes.items()
        if name in heads and tuple(heads[name].shape) != shape
    ]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"left over {', '.join(extra)}"] if extra else []
    problems += [f"wrong shape {', '.join(wrong)}"] if wrong else []
    if problems:
        raise InputError(f"{path}: not a Funnel of its config.json ({'; '.join(problems)})")

    found = {name: t.float() if t.is_floating_point() else t for name, t in (body | heads).items()}
    state = {"embeddings.tokens.weight": found["embeddings.word_embeddings.weight"]}
    state |= {
        f"embeddings.norm.{part}": found[f"embeddings.layer_norm.{part}"] for part in ("weight", "bias")
    }
    for hf, ours in _layer_prefixes(cfg, decoder).items():
        block, relative = ours.format("blocks"), ours.format("relative")
        q, k, v = (found[f"{hf}attention.{name}_head.weight"] for name in "qkv")
        state[f"{block}attention.qkv.weight"] = torch.cat([q, k, v])  # (3C, C): q, k, v
        zeros = torch.zeros(cfg.d_model)  # the query projection has no bias
        state[f"{block}attention.qkv.bias"] = torch.cat(
            [zeros] + [found[f"{hf}attention.{n}_head.bias"] for n in "kv"]
        )
        for old, new in _LAYER.items():
            for part in ("weight", "bias"):
                state[f"{block}{new}.{part}"] = found[f"{hf}{old}.{part}"]
        for old, new in _ATTENTION.items():
            state[f"{relative}{new}"] = found[f"{hf}attention.{old}"]
    if "lm_head.bias" in found:
        weight = found.get("lm_head.weight")
        if weight is not None and not torch.equal(weight, state["embeddings.tokens.weight"]):
            raise InputError(
                f"{path}: lm_head.weight differs from the word embeddings; linctl ties them, so an untied "
                f"head cannot be imported"
            )
        state["mlm.bias"] = found["lm_head.bias"]
        state["mlm.weight"] = state["embeddings.tokens.weight"]
    if not decoder and present:
        for old, new in _CLASSIFIER.items():
            for part in ("weight", "bias"):
                state[f"{new}.{part}"] = found[f"{old}.{part}"]
    return state, ignored
