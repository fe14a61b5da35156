"""Hugging Face Funnel checkpoints import into linctl's funnel models and compute the same thing."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from linctl.errors import ConfigError, InputError
from linctl.models import MODELS
from linctl.models.hf_funnel import read_hf_funnel

transformers = pytest.importorskip("transformers")

B, T, V = 3, 19, 101
SIZES = dict(vocab_size=V, d_model=36, n_head=3, d_head=12, d_inner=53, block_sizes=[2, 1, 2])
SIZES |= dict(block_repeats=[1, 2, 1], num_decoder_layers=2)
LAYOUTS = [
    pytest.param(dict(), id="defaults"),
    pytest.param(
        dict(separate_cls=True, truncate_seq=False, pool_q_only=False, pooling_type="max"), id="cls-qkv"
    ),
    pytest.param(dict(separate_cls=False, pool_q_only=True), id="no_cls"),
]


def _hf_config(**changes):
    return transformers.FunnelConfig(**(SIZES | changes))


def _randomise(model: torch.nn.Module) -> None:
    """Give every weight a random value: LayerNorm's ones and zeros and zero biases would hide mistakes."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0 if "layer_norm.weight" in name else 0.0, 0.2)


def _inputs(generator: torch.Generator):
    ids = torch.randint(0, V, (B, T), generator=generator)
    types = torch.randint(0, 2, (B, T), generator=generator)
    types[:, 0] = 2  # [CLS], as Hugging Face's tokenizer marks it
    mask = torch.arange(T)[None] < torch.tensor([T, 12, 6])[:, None]  # (B, T) True at real tokens
    return ids, types, mask


def _imported(hf_model, folder: Path):
    hf_model.save_pretrained(folder)
    imported = read_hf_funnel(folder)
    model = MODELS.build(imported.config).eval()
    missing, unexpected = model.load_state_dict(imported.state_dict, strict=False)
    assert not unexpected and all(name.startswith(type(model).heads) for name in missing)
    return imported, model


# Every layout through FunnelModel (its encoder and decoder); FunnelBaseModel with the defaults
CASES = [pytest.param(False, layout.values[0], id=f"FunnelModel-{layout.id}") for layout in LAYOUTS]
CASES.append(pytest.param(True, LAYOUTS[0].values[0], id="FunnelBaseModel-defaults"))


@pytest.mark.parametrize(("base", "layout"), CASES)
@pytest.mark.parametrize("attention_type", ["relative_shift", "factorized"])
def test_hidden_states_match_transformers(tmp_path, base, attention_type, layout):
    torch.manual_seed(1)
    cls = transformers.FunnelBaseModel if base else transformers.FunnelModel
    hf = cls(_hf_config(attention_type=attention_type, **layout)).eval()
    _randomise(hf)
    imported, model = _imported(hf, tmp_path / "funnel")
    assert imported.config.kind == ("funnel-classifier" if base else "funnel")
    ids, types, mask = _inputs(torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long(), token_type_ids=types).last_hidden_state
        found = model(ids, mask, types).hidden
        assert found.shape == expected.shape
        torch.testing.assert_close(found, expected, atol=1e-5, rtol=1e-5)
        # no token types given: zeros, as Hugging Face
        plain = hf(ids, attention_mask=mask.long()).last_hidden_state
        torch.testing.assert_close(model(ids, mask).hidden, plain, atol=1e-5, rtol=1e-5)


def test_masked_lm_logits_match(tmp_path):
    torch.manual_seed(3)
    hf = transformers.FunnelForMaskedLM(_hf_config()).eval()
    _randomise(hf)
    hf.tie_weights()
    _, model = _imported(hf, tmp_path / "mlm")
    assert model.mlm.weight is model.embeddings.tokens.weight
    ids, types, mask = _inputs(torch.Generator().manual_seed(4))
    positions = torch.tensor([[1, 7, 18], [2, 3, 11], [0, 4, 5]])
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long(), token_type_ids=types).logits
        found = model.mlm_logits(model(ids, mask, types).hidden, positions)
    torch.testing.assert_close(
        found, torch.stack([expected[b, positions[b]] for b in range(B)]), atol=1e-4, rtol=1e-5
    )


def test_sequence_classifier_logits_match(tmp_path):
    torch.manual_seed(5)
    hf = transformers.FunnelForSequenceClassification(_hf_config(num_labels=3)).eval()
    _randomise(hf)
    imported, model = _imported(hf, tmp_path / "cls")
    assert imported.config.num_labels == 3 and "head.weight" in imported.state_dict
    ids, types, mask = _inputs(torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask.long(), token_type_ids=types).logits
        found = model.classify(model(ids, mask, types).hidden)
    torch.testing.assert_close(found, expected, atol=1e-5, rtol=1e-5)


def test_the_pretraining_discriminator_head_is_named_as_ignored(tmp_path):
    hf = transformers.FunnelForPreTraining(_hf_config())
    imported, _ = _imported(hf, tmp_path / "electra")
    assert imported.config.kind == "funnel"
    assert sorted(imported.ignored) == sorted(
        f"discriminator_predictions.{layer}.{part}"
        for layer in ("dense", "dense_prediction")
        for part in ("weight", "bias")
    )


def _saved(tmp_path: Path, **changes) -> Path:
    folder = tmp_path / "saved"
    transformers.FunnelModel(_hf_config(**changes)).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_head": 4}, r"n_head × d_head \(4 × 12\) is not d_model \(36\)"),
        ({"hidden_act": "swish"}, "hidden_act is 'swish'"),
        ({"activation_dropout": 0.1}, "activation_dropout is 0.1"),
    ],
)
def test_configs_linctl_cannot_reproduce_are_refused(tmp_path, changes, message):
    with pytest.raises(ConfigError, match=message):
        read_hf_funnel(_saved(tmp_path, **changes))


def test_missing_left_over_and_misshapen_tensors_are_named(tmp_path):
    folder = _saved(tmp_path)
    tensors = load_file(folder / "model.safetensors")
    del tensors["encoder.blocks.1.0.attention.r_kernel"]
    tensors["encoder.blocks.9.0.attention.r_w_bias"] = torch.zeros(3, 12)
    tensors["decoder.layers.0.ffn.linear_1.weight"] = torch.zeros(5, 36)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(InputError) as err:
        read_hf_funnel(folder)
    assert "missing encoder.blocks.1.0.attention.r_kernel" in str(err.value)
    assert "left over encoder.blocks.9.0.attention.r_w_bias" in str(err.value)
    assert "decoder.layers.0.ffn.linear_1.weight (5, 36) (expected (53, 36))" in str(err.value)


def test_not_a_funnel_checkpoint(tmp_path):
    folder = _saved(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "bert"}))
    with pytest.raises(ConfigError, match="model_type is 'bert', not 'funnel'"):
        read_hf_funnel(folder)
    with pytest.raises(InputError, match=r"no config\.json"):
        read_hf_funnel(tmp_path / "empty")
