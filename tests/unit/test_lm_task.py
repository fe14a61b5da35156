"""The language-modelling task on `prepare wikitext` streams: blocks that cover the stream, fairseq's
eval-lm protocol (every token once, with its context window), the KSVD term beside clean perplexity."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linctl.config.load import load_config
from linctl.data.lm_stream import TokenStream
from linctl.errors import ConfigError, InputError
from linctl.models import MODELS
from linctl.runtime.device import resolve_device
from linctl.tasks import TASKS
from linctl.train.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CPU = resolve_device("cpu")


def build(tiny_lm: Path, *overrides: str):
    vocab = TokenStream(tiny_lm / "train").vocab_size
    sets = [f"task.train_dir={tiny_lm / 'train'}", f"task.eval_dir={tiny_lm / 'valid'}"]
    sets += [f"model.vocab_size={vocab}", "model.dropout=0.0", *overrides]
    cfg = load_config(REPO / "configs" / "lm" / "tiny.yaml", RunConfig, sets)
    torch.manual_seed(0)
    return cfg, TASKS.build(cfg.task, cfg.model, 0), MODELS.build(cfg.model).eval()


def test_training_blocks_predict_each_next_token(tiny_lm):
    _, task, _ = build(tiny_lm)
    stream = task._train.tokens
    batch = task.train_batch(np.array([0, 3]), 0)
    inputs, targets = batch["input_ids"], batch["targets"]  # (2, 16) each
    assert targets[1].tolist() == stream[48:64].tolist()
    assert inputs[1].tolist() == stream[47:63].tolist()  # each token is the target of the one before
    assert inputs[0, 0] == task._train.eos_id and inputs[0, 1:].tolist() == stream[:15].tolist()
    assert len(task.train_lengths) == len(stream) // 16
    assert task.count_tokens(batch) == (32, 32)


@pytest.mark.parametrize("window", [0, 5, 15])
def test_evaluation_scores_every_token_exactly_once(tiny_lm, window):
    _, task, _ = build(tiny_lm, f"task.context_window={window}", "task.eval_tokens=101")
    scored = []
    for index in np.argsort(task._windows[:, 0]):
        batch = task.eval_batch(np.array([index]), 0)
        targets = batch["targets"][0]
        scored += targets[targets != -100].tolist()
        assert batch["input_ids"].shape[1] <= 16
    assert scored == task._eval.tokens[:101].tolist()


def test_context_window_equals_scoring_each_token_alone_with_its_window(tiny_lm):
    _, task, model = build(tiny_lm, "task.context_window=6", "task.eval_tokens=45")
    metrics = task.evaluate(model, CPU, 4, "fp32")
    stream = task._eval.tokens.astype(np.int64)
    prefixed = np.concatenate([[task._eval.eos_id], stream])  # prefixed[t] is the input that predicts t
    nll = 0.0
    with torch.no_grad():
        for start, first, end in task._windows:
            for t in range(first, end):  # token t alone, with the context its block gives it
                ids = torch.from_numpy(prefixed[start : t + 1])[None]
                logits = model(ids).logits[0, -1]
                nll += float(F.cross_entropy(logits[None], torch.tensor([stream[t]]), reduction="sum"))
    assert metrics["loss"] == pytest.approx(nll / 45, rel=1e-5)
    assert metrics["ppl"] == pytest.approx(math.exp(nll / 45), rel=1e-5)


def test_a_longer_context_window_changes_the_score(tiny_lm):
    # the equivalence above is only meaningful if the window matters
    _, task0, model = build(tiny_lm, "task.eval_tokens=60")
    _, task8, _ = build(tiny_lm, "task.context_window=8", "task.eval_tokens=60")
    assert task0.evaluate(model, CPU, 4, "fp32")["loss"] != task8.evaluate(model, CPU, 4, "fp32")["loss"]


def test_the_ksvd_term_joins_the_loss_but_not_the_perplexity(tiny_lm):
    _, task, model = build(tiny_lm, "task.eval_tokens=80")
    model.train()  # dropout is 0: the same numbers as in eval mode
    batch = task.train_batch(np.array([1, 2, 5]), 0)
    loss, sums = task.loss(model, batch)
    out = model(batch["input_ids"])
    nll = F.cross_entropy(out.logits.flatten(0, 1), batch["targets"].flatten(), reduction="sum")
    assert out.aux_loss.item() > 0  # the last layer is Primal with ksvd_weight 0.1
    torch.testing.assert_close(loss, (nll + out.aux_loss) / 48)
    metrics = task.summarize({key: float(value) for key, value in sums.items()})
    assert metrics["ppl"] == pytest.approx(math.exp(nll.item() / 48), rel=1e-5)
    assert metrics["aux_loss"] == pytest.approx(out.aux_loss.item() / 48, rel=1e-5)


def test_problems_of_data_and_model_are_listed(tiny_lm, tmp_path):
    cfg, _, _ = build(tiny_lm, "model.vocab_size=50", "task.tokens_per_sample=20")
    found = TASKS.build(cfg.task, cfg.model, 0).problems()
    assert any("model.vocab_size is 50" in p for p in found)
    assert any("tokens_per_sample 20 is longer than model.max_seq_length (16)" in p for p in found)
    missing = load_config(
        REPO / "configs" / "lm" / "tiny.yaml", RunConfig, [f"task.train_dir={tmp_path}", "task.eval_dir=null"]
    )
    (problem,) = TASKS.build(missing.task, missing.model, 0).problems()
    assert (str(tmp_path) in problem and "not `prepare wikitext` output" in problem) or "manifest" in problem
    with pytest.raises(InputError):
        TASKS.build(missing.task, missing.model, 0).train_lengths  # noqa: B018


def test_a_context_window_as_long_as_the_block_is_refused():
    with pytest.raises(ConfigError, match="context_window"):
        load_config(REPO / "configs" / "lm" / "tiny.yaml", RunConfig, ["task.context_window=16"])


def test_the_task_needs_a_language_model():
    cfg = load_config(REPO / "configs" / "mlm" / "tiny.yaml", RunConfig)
    lm = load_config(REPO / "configs" / "lm" / "tiny.yaml", RunConfig)
    with pytest.raises(ConfigError, match="causal language model"):
        TASKS.build(lm.task, cfg.model, 0)
