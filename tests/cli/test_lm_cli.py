"""`linctl train` and `linctl eval` of a language model: a decoder with a Primal last layer on
`prepare wikitext` streams, perplexity with fairseq's eval-lm protocol printed beside it."""

import json
from pathlib import Path

import pytest

from linctl.data.lm_stream import TokenStream

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "lm" / "tiny.yaml"


@pytest.fixture(scope="module")
def lm_run(tiny_lm) -> list[object]:
    vocab = TokenStream(tiny_lm / "train").vocab_size
    return [
        "--config", TINY, "--set", f"task.train_dir={tiny_lm / 'train'}",
        "--set", f"task.eval_dir={tiny_lm / 'valid'}", "--set", f"model.vocab_size={vocab}",
    ]  # fmt: skip


def test_train_then_eval_with_a_context_window(cli, lm_run, tmp_path):
    model_dir = tmp_path / "model"
    cli("train", *lm_run, "--model-dir", model_dir)
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "train_loss" in r]
    assert trained and all(r["train_aux_loss"] > 0 for r in trained)  # the KSVD term, logged apart
    assert all(r["train_ppl"] > 1 for r in trained)
    result = cli("eval", *lm_run, "--model-dir", model_dir, "--context-window", 8, "--metric", "ppl",
                 "--json", tmp_path / "eval.json")  # fmt: skip
    found = json.loads((tmp_path / "eval.json").read_text())
    assert "--tokens-per-sample 16 --context-window 8" in found["protocol"]
    assert found["ppl"] > 1 and "ppl" in result.stdout and "context-window 8" in result.stdout
    assert "accuracy" not in result.stdout  # --metric shows that metric only


def test_an_unknown_metric_names_the_ones_the_task_reports(cli, lm_run, tmp_path):
    model_dir = tmp_path / "model"
    cli("train", *lm_run, "--model-dir", model_dir, "--set", "train.steps=3", "--set", "train.eval_every=0")
    result = cli("eval", *lm_run, "--model-dir", model_dir, "--metric", "bleu", ok=False)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --metric bleu: this task reports loss, ppl, accuracy, aux_loss"
