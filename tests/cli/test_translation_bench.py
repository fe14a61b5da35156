"""`linctl bench --model seq2seq` (and seq2seq-encoder): crybot's comparison of the vanilla and the
Linformer encoder, timed as whole encoder-decoders and as encoders alone, through the bench workers
(`slow`: a Transformer-base in a worker per case); the encoder-only model the preset builds."""

import json

import pytest

from linctl.errors import ConfigError
from linctl.models import MODELS, ModelSpec
from linctl.tasks import TASKS


def bench(cli, tmp_path, preset: str) -> list[dict]:
    cli("bench", "--level", "model", "--model", preset, "--seq-len", 12, "--k", 8, "--sharing", "none",
        "--attention", "softmax impl=sdpa,linformer", "--repeats", 1, "--warmup", 0, "--device", "cpu",
        "--json", tmp_path / "b.json")  # fmt: skip
    return json.loads((tmp_path / "b.json").read_text())["rows"]


@pytest.mark.slow
def test_the_encoder_decoder_with_a_softmax_and_a_linformer_encoder(cli, tmp_path):
    rows = bench(cli, tmp_path, "seq2seq")
    assert [(r["label"], r["n"], r["status"]) for r in rows] == [
        ("softmax impl=sdpa", 12, "ok"), ("linformer k=8 sharing=none", 12, "ok")
    ]  # fmt: skip
    assert rows[0]["tokens"] == 12 and rows[0]["speedup"] == 1.0 and rows[1]["speedup"] > 0


@pytest.mark.slow
def test_the_encoder_alone_costs_less_than_the_whole_model(cli, tmp_path):
    encoder = bench(cli, tmp_path, "seq2seq-encoder")
    whole = bench(cli, tmp_path, "seq2seq")
    assert [r["status"] for r in encoder] == ["ok", "ok"]
    assert all(e["flops"] < w["flops"] for e, w in zip(encoder, whole, strict=True))


def test_an_encoder_alone_returns_its_states_and_cannot_translate():
    from pydantic import TypeAdapter

    sizes = dict(kind="seq2seq", vocab_size=97, d_model=32, n_heads=4, n_layers=2, d_ff=64, max_seq_length=16)
    cfg = TypeAdapter(ModelSpec).validate_python(sizes | {"decoder_layers": 0})
    inputs = cfg.example_inputs(3, 11, lengths=[11, 4, 7])
    assert set(inputs) == {"input_ids", "attention_mask"}
    out = MODELS.build(cfg).eval()(**inputs)
    assert out.hidden.shape == (3, 11, 32) and out.logits is None
    with pytest.raises(ConfigError, match=r"needs an encoder-decoder \(seq2seq, decoder_layers ≥ 1\)"):
        TASKS.build(TASKS.classes["translation"].Config(), cfg, 0)
