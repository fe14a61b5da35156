"""CUDA paths of attention and training; run where a GPU is lent (`pytest -m gpu tests/gpu`)."""

import json
import math

import pytest
import torch
from pydantic import TypeAdapter

from linctl.models import MODELS, ModelSpec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ATTENTIONS = [
    {"kind": "softmax"},
    {"kind": "linformer", "k": 7, "sharing": "none"},
    {"kind": "linformer", "k": 7, "sharing": "layerwise"},
]


@pytest.mark.parametrize("attention", ATTENTIONS, ids=lambda a: a.get("sharing", a["kind"]))
def test_cuda_matches_cpu_and_ignores_padding(attention):
    cfg = TypeAdapter(ModelSpec).validate_python(
        {"kind": "encoder", "vocab_size": 97, "d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64,
         "max_seq_length": 16, "attention": attention}
    )  # fmt: skip
    model = MODELS.build(cfg).eval()
    ids = torch.randint(0, 97, (3, 13))
    mask = torch.ones(3, 13, dtype=torch.bool)
    mask[1, 9:] = False
    with torch.no_grad():
        on_cpu = model(ids, mask).hidden
        on_cuda = model.cuda()(ids.cuda(), mask.cuda()).hidden
        changed = ids.clone()
        changed[1, 9:] = 5
        padded_changed = model(changed.cuda(), mask.cuda()).hidden
    torch.testing.assert_close(on_cuda.cpu(), on_cpu, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(padded_changed[1, :9], on_cuda[1, :9])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_train_on_cuda(cli, tiny_run, tmp_path, precision):
    cli("train", *tiny_run, "--device", "cuda", "--set", f"train.precision={precision}")
    records = [json.loads(line) for line in (tmp_path / "model" / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if "eval_ppl" in r][-1]
    assert final["step"] == 12 and math.isfinite(final["eval_ppl"])
