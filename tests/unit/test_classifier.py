"""The BERT fine-tuning classifier: [CLS] → pooler → output layer, on tiny odd sizes."""

import pytest
import torch
from pydantic import TypeAdapter

from linctl.models import MODELS, ModelSpec

B, T, C, H, V = 3, 15, 36, 3, 97
SIZES = dict(vocab_size=V, d_model=C, n_heads=H, n_layers=2, d_ff=53, max_seq_length=T)
ATTENTIONS = [{"kind": "softmax"}, {"kind": "linformer", "k": 5, "sharing": "key-value"}]


def build(kind: str, **kw):
    return MODELS.build(TypeAdapter(ModelSpec).validate_python({"kind": kind, **SIZES, **kw})).eval()


@pytest.mark.parametrize("num_labels", [1, 3])
def test_logits_have_one_column_per_label(num_labels):
    model = build("classifier", num_labels=num_labels)
    hidden = model(torch.randint(0, V, (B, T)), segment_ids=torch.randint(0, 2, (B, T))).hidden
    assert hidden.shape == (B, T, C)
    assert model.classify(hidden).shape == (B, num_labels)


@pytest.mark.parametrize("attention", ATTENTIONS, ids=lambda a: a["kind"])
def test_padding_after_a_sequence_does_not_change_its_logits(attention):
    torch.manual_seed(0)
    model = build("classifier", num_labels=2, attention=attention)
    ids, segments = torch.randint(0, V, (1, 9)), torch.tensor([[0] * 5 + [1] * 4])
    alone = model.classify(model(ids, torch.ones(1, 9, dtype=torch.bool), segments).hidden)
    padded_ids = torch.cat([ids, torch.randint(0, V, (1, T - 9))], 1)
    padded_segments = torch.cat([segments, torch.zeros(1, T - 9, dtype=torch.long)], 1)
    mask = torch.arange(T)[None, :] < 9
    padded = model.classify(model(padded_ids, mask, padded_segments).hidden)
    assert torch.allclose(alone, padded, atol=1e-5)


def test_an_mlm_encoder_initialises_the_body():
    torch.manual_seed(1)
    encoder, classifier = build("encoder"), build("classifier", num_labels=2)
    missing, unexpected = classifier.load_state_dict(encoder.state_dict(), strict=False)
    assert sorted(missing) == ["head.bias", "head.weight", "pooler.bias", "pooler.weight"]
    assert unexpected and all(name.startswith("mlm.") for name in unexpected)
    ids = torch.randint(0, V, (B, T))
    assert torch.equal(encoder(ids).hidden, classifier(ids).hidden)
