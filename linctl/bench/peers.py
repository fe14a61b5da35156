"""Peers measured on the same shapes: Hugging Face `transformers`' BERT (SDPA attention) and the
`linformer` package from PyPI. Both are optional (`pip install linctl[peers]`); a missing one is skipped."""

import importlib.util
from typing import Any

import torch
from torch import Tensor, nn

from linctl.bench.case import Case
from linctl.bench.model import input_batches
from linctl.bench.workload import Workload
from linctl.errors import ConfigError

# The package's default (one E and one F per layer, shared by the heads) is our `headwise`. Its
# share_kv=True is not our `key-value`: besides E = F it drops the value projection (values = keys),
# a different model with one d×d product fewer per layer; it has no unshared or layerwise form.
LINFORMER_SHARING = {"headwise": False}


def installed(peer: str) -> bool:
    """Return whether the peer's package can be imported."""
    return importlib.util.find_spec(peer) is not None


def peer_label(peer: str, attention: dict[str, Any]) -> str:
    if peer == "transformers":
        return "transformers BertModel sdpa"
    return f"linformer-pkg k={attention['k']} sharing={attention['sharing']}"


def matches(peer: str, attention: dict[str, Any]) -> bool:
    """Return whether ``peer`` can run the configuration of our variant ``attention``."""
    if peer == "transformers":
        return attention["kind"] == "softmax" and attention.get("impl") == "sdpa"
    return attention["kind"] == "linformer" and attention.get("sharing") in LINFORMER_SHARING


class _Bert(nn.Module):
    def __init__(self, case: Case) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        m = case.model
        if m.get("norm_first"):
            raise ConfigError(
                "transformers' BERT is post-LN; bench it against a model with norm_first: false"
            )
        cfg = BertConfig(
            vocab_size=m["vocab_size"], hidden_size=m["d_model"], num_hidden_layers=m["n_layers"],
            num_attention_heads=m["n_heads"], intermediate_size=m["d_ff"], max_position_embeddings=case.n,
            type_vocab_size=max(1, m.get("segment_vocab_size", 2)), attn_implementation="sdpa",
        )  # fmt: skip
        self.bert = BertModel(cfg, add_pooling_layer=False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _LinformerPackage(nn.Module):
    """The package's `Linformer` stack under token and position embeddings (its `LinformerLM` without the
    vocabulary projection). It takes no padding mask: padded positions are computed like real ones."""

    def __init__(self, case: Case) -> None:
        super().__init__()
        from linformer import Linformer

        m, a = case.model, case.attention
        if m["d_ff"] != 4 * m["d_model"]:
            raise ConfigError(
                f"the linformer package fixes d_ff = 4·d_model; this model has d_ff {m['d_ff']}"
            )
        self.tokens = nn.Embedding(m["vocab_size"], m["d_model"])
        self.positions = nn.Embedding(case.n, m["d_model"])
        self.stack = Linformer(
            dim=m["d_model"], seq_len=case.n, depth=m["n_layers"], k=a["k"], heads=m["n_heads"],
            share_kv=LINFORMER_SHARING[a["sharing"]], dropout=m.get("dropout", 0.1),
        )  # fmt: skip

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        positions = self.positions(torch.arange(input_ids.size(1), device=input_ids.device))
        return self.stack(self.tokens(input_ids) + positions)


PEER_MODELS: dict[str, type[nn.Module]] = {"transformers": _Bert, "linformer": _LinformerPackage}


def peer_workload(case: Case, device: torch.device, dtype: torch.dtype) -> Workload:
    """Build the peer model of ``case`` and the same token batches our model gets (padded to n)."""
    module = PEER_MODELS[case.peer or ""](case).to(device)
    return Workload(module, *input_batches(case, device))
