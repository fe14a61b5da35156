"""Hugging Face BERT checkpoints import into linctl's encoder and compute the same thing."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from linctl.errors import ConfigError, InputError
from linctl.models.classifier import ClassifierModel
from linctl.models.encoder import EncoderModel
from linctl.models.hf_bert import read_hf_bert

transformers = pytest.importorskip("transformers")

SIZES = {
    "vocab_size": 101,
    "hidden_size": 36,
    "num_attention_heads": 3,
    "num_hidden_layers": 3,
    "intermediate_size": 53,
    "max_position_embeddings": 40,
    "type_vocab_size": 2,
}
B, T = 3, 17


def _hf_config(**changes):
    sizes = SIZES | changes
    return transformers.BertConfig(**sizes, attn_implementation="eager")


def _randomise(model: torch.nn.Module) -> None:
    """Give every weight a random value: LayerNorm's ones and zeros and zero biases would hide mistakes."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0 if "LayerNorm.weight" in name else 0.0, 0.2)


def _save(model, folder: Path, fmt: str) -> Path:
    """Save ``model`` as Hugging Face does: safetensors, or the legacy ``pytorch_model.bin`` with the
    ``position_ids`` buffer and the tied decoder weight that older versions wrote."""
    if fmt == "safetensors":
        model.save_pretrained(folder)
    else:  # transformers 5 writes safetensors only; pytorch_model.bin is what older versions made
        folder.mkdir(parents=True)
        model.config.save_pretrained(folder)
        state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
        prefix = "bert." if any(name.startswith("bert.") for name in state) else ""
        state[f"{prefix}embeddings.position_ids"] = torch.arange(SIZES["max_position_embeddings"])[None]
        torch.save(state, folder / "pytorch_model.bin")
    (folder / "vocab.txt").write_text("".join(f"tok{i}\n" for i in range(SIZES["vocab_size"])))
    return folder


def _inputs(generator: torch.Generator):
    ids = torch.randint(0, SIZES["vocab_size"], (B, T), generator=generator)
    segments = torch.randint(0, SIZES["type_vocab_size"], (B, T), generator=generator)
    lengths = torch.tensor([T, 11, 5])
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T) True at real tokens
    return ids, segments, mask


def _linctl(imported, strict: bool) -> EncoderModel:
    model = EncoderModel(imported.config).eval()
    result = model.load_state_dict(imported.state_dict, strict=strict)
    if not strict:
        assert not result.unexpected_keys
        assert all(key.startswith("mlm.") for key in result.missing_keys)
    return model


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_bert_model_hidden_states_and_pooler_match(tmp_path, fmt):
    torch.manual_seed(1)
    hf = transformers.BertModel(_hf_config()).eval()
    _randomise(hf)
    imported = read_hf_bert(_save(hf, tmp_path / "bert", fmt))
    assert imported.vocab == tmp_path / "bert" / "vocab.txt"
    assert not imported.has_mlm_head
    cfg = imported.config
    assert (cfg.vocab_size, cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.d_ff) == (101, 36, 3, 3, 53)
    assert (cfg.max_seq_length, cfg.segment_vocab_size, cfg.layer_norm_eps) == (40, 2, 1e-12)
    assert (cfg.dropout, cfg.attention.kind, cfg.attention.dropout, cfg.norm_first) == (
        0.1,
        "softmax",
        0.1,
        False,
    )

    ids, segments, mask = _inputs(torch.Generator().manual_seed(2))
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask.long(), token_type_ids=segments)
        ours = _linctl(imported, strict=False)(ids, mask, segments).hidden
    torch.testing.assert_close(ours[mask], theirs.last_hidden_state[mask], rtol=0, atol=1e-5)
    pooled = torch.tanh(ours[:, 0] @ imported.pooler["pooler.weight"].T + imported.pooler["pooler.bias"])
    torch.testing.assert_close(pooled, theirs.pooler_output, rtol=0, atol=1e-5)

    # The classifier takes the body and the pooler by the same names; only its output layer is new.
    cfg = ClassifierModel.Config(**imported.config.model_dump(exclude={"kind"}), num_labels=3)
    classifier = ClassifierModel(cfg).eval()
    result = classifier.load_state_dict(imported.state_dict | imported.pooler, strict=False)
    assert not result.unexpected_keys and sorted(result.missing_keys) == ["head.bias", "head.weight"]
    with torch.no_grad():
        hidden = classifier(ids, mask, segments).hidden
        torch.testing.assert_close(
            classifier.pooler(hidden[:, 0]).tanh(), theirs.pooler_output, rtol=0, atol=1e-5
        )


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_masked_lm_logits_match(tmp_path, fmt):
    torch.manual_seed(3)
    hf = transformers.BertForMaskedLM(_hf_config()).eval()
    _randomise(hf)
    hf.tie_weights()  # the decoder is the embedding matrix again
    imported = read_hf_bert(_save(hf, tmp_path / "mlm", fmt))
    assert imported.has_mlm_head
    assert imported.pooler is None  # BertForMaskedLM has no pooler

    ids, segments, mask = _inputs(torch.Generator().manual_seed(4))
    model = _linctl(imported, strict=True)
    assert model.mlm.decoder.weight is model.embeddings.tokens.weight
    positions = torch.tensor([[0, 5, 16], [1, 2, 10], [0, 3, 4]])  # (B, P), all at real tokens
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask.long(), token_type_ids=segments).logits  # (B, T, V)
        ours = model.mlm_logits(model(ids, mask, segments).hidden, positions)
    expected = torch.gather(theirs, 1, positions[..., None].expand(-1, -1, theirs.size(-1)))
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def test_pretraining_checkpoint_ignores_nsp_and_reads_legacy_names(tmp_path):
    hf = transformers.BertForPreTraining(_hf_config()).eval()
    folder = _save(hf, tmp_path / "pt", "bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert any(name.startswith("cls.seq_relationship.") for name in state)
    legacy = {name.replace("LayerNorm.weight", "LayerNorm.gamma"): t for name, t in state.items()}
    legacy = {name.replace("LayerNorm.bias", "LayerNorm.beta"): t for name, t in legacy.items()}
    torch.save(legacy, folder / "pytorch_model.bin")
    imported = read_hf_bert(folder)
    assert imported.has_mlm_head and imported.pooler is not None
    torch.testing.assert_close(
        imported.state_dict["blocks.2.norm2.weight"], state["bert.encoder.layer.2.output.LayerNorm.weight"]
    )


def test_fused_qkv_stacks_query_key_value(tmp_path):
    hf = transformers.BertModel(_hf_config())
    imported = read_hf_bert(_save(hf, tmp_path / "bert", "safetensors"))
    qkv = imported.state_dict["blocks.1.attention.qkv.weight"]  # (3C, C)
    own = hf.encoder.layer[1].attention.self
    for part, linear in zip(qkv.chunk(3), (own.query, own.key, own.value), strict=True):
        torch.testing.assert_close(part, linear.weight.detach())


def test_gelu_is_the_exact_erf_form():
    x = torch.linspace(-6, 6, 1001)
    act = transformers.activations.ACT2FN["gelu"]
    torch.testing.assert_close(act(x), x * 0.5 * (1 + torch.erf(x / 2**0.5)), rtol=0, atol=1e-6)
    torch.testing.assert_close(act(x), torch.nn.functional.gelu(x), rtol=0, atol=0)


@pytest.fixture
def saved(tmp_path) -> Path:
    return _save(transformers.BertModel(_hf_config()), tmp_path / "bert", "safetensors")


def _edit_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path)


def test_missing_tensor_is_named(saved):
    _edit_weights(saved, lambda t: t.pop("encoder.layer.1.intermediate.dense.bias"))
    with pytest.raises(
        InputError, match=r"model\.safetensors.*missing encoder\.layer\.1\.intermediate\.dense\.bias"
    ):
        read_hf_bert(saved)


def test_extra_tensor_is_named(saved):
    _edit_weights(saved, lambda t: t.update({"encoder.layer.3.output.dense.weight": torch.zeros(36, 53)}))
    with pytest.raises(InputError, match=r"left over encoder\.layer\.3\.output\.dense\.weight"):
        read_hf_bert(saved)


def test_wrong_shape_is_named(saved):
    _edit_weights(saved, lambda t: t.update({"pooler.dense.bias": torch.zeros(35)}))
    with pytest.raises(InputError, match=r"wrong shape pooler\.dense\.bias \(35,\) \(expected \(36,\)\)"):
        read_hf_bert(saved)


def test_all_problems_in_one_line(saved):
    def edit(tensors):
        tensors.pop("embeddings.LayerNorm.bias")
        tensors["classifier.weight"] = torch.zeros(2, 36)
        tensors["encoder.layer.0.output.dense.weight"] = torch.zeros(36, 52)

    _edit_weights(saved, edit)
    with pytest.raises(InputError) as info:
        read_hf_bert(saved)
    message = str(info.value)
    assert "\n" not in message
    assert "missing embeddings.LayerNorm.bias" in message
    assert "left over classifier.weight" in message
    assert "wrong shape encoder.layer.0.output.dense.weight (36, 52) (expected (36, 53))" in message


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"hidden_act": "relu"}, "hidden_act is 'relu'"),
        ({"hidden_act": "gelu_new"}, "hidden_act is 'gelu_new'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type is 'relative_key'"),
        ({"is_decoder": True}, "is_decoder is true"),
        ({"model_type": "roberta"}, "model_type is 'roberta'"),
        ({"num_attention_heads": 5}, "divisible by n_heads"),
    ],
)
def test_unsupported_config_is_refused(saved, change, match):
    path = saved / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    with pytest.raises(ConfigError, match=match) as info:
        read_hf_bert(saved)
    assert "\n" not in str(info.value) and "config.json" in str(info.value)


def test_folder_without_weights_or_config(tmp_path, saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no weights"):
        read_hf_bert(saved)
    with pytest.raises(InputError, match=r"no config\.json"):
        read_hf_bert(tmp_path)


def test_untied_decoder_is_refused(tmp_path):
    hf = transformers.BertForMaskedLM(_hf_config())
    folder = _save(hf, tmp_path / "mlm", "bin")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"] + 1
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.raises(InputError, match=r"cls\.predictions\.decoder\.weight differs"):
        read_hf_bert(folder)
