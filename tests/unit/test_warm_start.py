"""Starting a classifier from pretrained weights: a linctl MLM checkpoint or a Hugging Face BERT folder."""

import shutil

import pytest
import torch
import yaml
from pydantic import TypeAdapter
from safetensors.torch import save_model

from linctl.errors import ConfigError, InputError
from linctl.models import MODELS, ModelSpec
from linctl.train.warm_start import warm_start

SIZES = dict(
    vocab_size=101, d_model=36, n_heads=3, n_layers=2, d_ff=53, max_seq_length=40, layer_norm_eps=1e-12
)


def build(kind: str, **kw):
    return MODELS.build(TypeAdapter(ModelSpec).validate_python({"kind": kind, **SIZES, **kw})).eval()


def test_an_mlm_checkpoint_gives_the_body_and_leaves_the_heads_fresh(tmp_path):
    torch.manual_seed(0)
    pretrained = build("encoder")
    save_model(pretrained, str(tmp_path / "model.safetensors"))
    classifier = build("classifier", num_labels=3)
    started = warm_start(classifier, tmp_path, data_vocab=None)
    assert started.fresh == ["pooler.weight", "pooler.bias", "head.weight", "head.bias"]
    assert started.ignored and all(name.startswith("mlm.") for name in started.ignored)
    ids = torch.randint(0, 101, (3, 40))
    assert torch.equal(pretrained(ids).hidden, classifier(ids).hidden)


def test_a_hugging_face_bert_brings_its_pooler_and_vocabulary(tmp_path, data_dir):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=101, hidden_size=36, num_attention_heads=3, num_hidden_layers=2, intermediate_size=53,
        max_position_embeddings=40, type_vocab_size=2,
    )  # fmt: skip
    torch.manual_seed(1)
    bert = transformers.BertModel(config).eval()
    bert.save_pretrained(tmp_path / "bert")
    vocab = tmp_path / "bert" / "vocab.txt"
    vocab.write_text("\n".join(f"[unused{i}]" for i in range(101)) + "\n")
    classifier = build("classifier", num_labels=2)
    started = warm_start(classifier, tmp_path / "bert", data_vocab=vocab)
    assert started.fresh == ["head.weight", "head.bias"] and started.vocab == vocab
    ids, mask = torch.randint(0, 101, (2, 40)), torch.ones(2, 40, dtype=torch.bool)
    with torch.no_grad():
        theirs = bert(input_ids=ids, attention_mask=mask.long()).pooler_output
        ours = classifier.pooler(classifier(ids, mask).hidden[:, 0]).tanh()
    assert (theirs - ours).abs().max() < 1e-5

    other = tmp_path / "other-vocab.txt"
    shutil.copy(data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt", other)
    with pytest.raises(InputError, match=r"vocabulary .* differs from the data's"):
        warm_start(build("classifier"), tmp_path / "bert", data_vocab=other)


def test_a_hugging_face_bert_of_another_config_is_refused_naming_every_field(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=101, hidden_size=36, num_attention_heads=3, num_hidden_layers=2, intermediate_size=53,
        max_position_embeddings=40, type_vocab_size=2, layer_norm_eps=1e-12,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(tmp_path / "bert")
    no_bias = {"kind": "softmax", "bias": False}
    other = build("classifier", segment_vocab_size=0, layer_norm_eps=1e-6, attention=no_bias)
    with pytest.raises(ConfigError) as err:
        warm_start(other, tmp_path / "bert", data_vocab=None)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--init-checkpoint {tmp_path / 'bert'}: its model differs from the run's (")
    for part in ("segment_vocab_size: 2 there, 0 here", "layer_norm_eps: 1e-12 there, 1e-06 here",
                 "attention.bias: True there, False here"):  # fmt: skip
        assert part in message
    assert "dropout" not in message


def save_checkpoint(model, folder):
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, str(folder / "model.safetensors"))  # stores each shared tensor once
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": model.cfg.model_dump(mode="json")}))


LAYERWISE = {"kind": "linformer", "k": 8, "sharing": "layerwise"}


def test_a_layerwise_linformer_checkpoint_warm_starts_the_same_model(tmp_path):
    torch.manual_seed(2)
    pretrained = build("encoder", attention=LAYERWISE)
    save_checkpoint(pretrained, tmp_path / "mlm")
    again = build("encoder", attention=LAYERWISE)
    started = warm_start(again, tmp_path / "mlm", data_vocab=None)
    assert started.fresh == [] and started.ignored == []  # the tied decoder is loaded, not fresh
    for name, value in pretrained.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name
    classifier = build("classifier", num_labels=2, attention=LAYERWISE)
    started = warm_start(classifier, tmp_path / "mlm", data_vocab=None)
    assert started.fresh == ["pooler.weight", "pooler.bias", "head.weight", "head.bias"]
    assert started.ignored and all(name.startswith("mlm.") for name in started.ignored)
    ids = torch.randint(0, 101, (3, 40))
    assert torch.equal(pretrained(ids).hidden, classifier(ids).hidden)


def test_a_linctl_checkpoint_of_another_attention_is_refused(tmp_path):
    save_checkpoint(build("encoder", attention=LAYERWISE), tmp_path / "mlm")
    with pytest.raises(ConfigError) as err:
        warm_start(build("classifier", attention={**LAYERWISE, "k": 16}), tmp_path / "mlm", data_vocab=None)
    assert "(attention.k: 8 there, 16 here)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        warm_start(build("classifier"), tmp_path / "mlm", data_vocab=None)
    assert "attention.kind: 'linformer' there, 'softmax' here" in str(err.value)
    assert "attention.sharing: 'layerwise' there, unset here" in str(err.value)


def test_a_linctl_checkpoint_config_is_read_with_todays_defaults(tmp_path):
    model = build("encoder", attention=LAYERWISE)
    save_checkpoint(model, tmp_path / "mlm")
    dumped = model.cfg.model_dump(mode="json")
    del dumped["attention"]["bias"], dumped["norm_first"]  # written before these fields existed: defaults
    dumped["attention"] = {"projected_dims": 8, **{k: v for k, v in dumped["attention"].items() if k != "k"}}
    (tmp_path / "mlm" / "config.yaml").write_text(yaml.safe_dump({"model": dumped}))
    assert warm_start(build("encoder", attention=LAYERWISE), tmp_path / "mlm", data_vocab=None).fresh == []
    (tmp_path / "mlm" / "config.yaml").write_text(yaml.safe_dump({"model": {**dumped, "d_model": "wide"}}))
    with pytest.raises(
        InputError, match=r"config.yaml: its model section is no linctl model \(encoder.d_model"
    ):
        warm_start(build("encoder", attention=LAYERWISE), tmp_path / "mlm", data_vocab=None)


def test_tensors_that_do_not_fit_are_listed(tmp_path):
    save_model(build("encoder"), str(tmp_path / "model.safetensors"))
    with pytest.raises(InputError) as err:
        warm_start(build("classifier", d_ff=64), tmp_path, data_vocab=None)
    message = str(err.value)
    assert message.startswith(f"--init-checkpoint {tmp_path}: its tensors do not fit the model: shapes ")
    assert "blocks.0.ffn.up.weight (53, 36) there, (64, 36) here" in message


def test_a_folder_that_is_no_checkpoint(tmp_path):
    with pytest.raises(
        InputError, match=r"neither a linctl checkpoint .* nor a Hugging Face BERT or Funnel folder"
    ):
        warm_start(build("classifier"), tmp_path, data_vocab=None)
