"""ELECTRA pretraining of a funnel on tiny odd sizes: the generator, Gumbel-max sampling, the loss."""

import pytest
import torch
from pydantic import TypeAdapter

from linctl.config.load import validate
from linctl.errors import ConfigError
from linctl.models import MODELS, ModelSpec
from linctl.models.file import ModelFile
from linctl.tasks.electra import ElectraTask, gumbel_max

B, T, V, MASK = 3, 16, 97, 4
SIZES = dict(vocab_size=V, d_model=48, n_heads=4, d_ff=52, max_seq_length=T, block_sizes="1_1x2")


def build(**kw):
    cfg = TypeAdapter(ModelSpec).validate_python(
        {"kind": "funnel-electra", **SIZES, "n_decoder_layers": 1} | kw
    )
    return cfg, MODELS.build(cfg)


def batch():
    ids = torch.randint(5, V, (B, T))
    mask = torch.arange(T)[None] < torch.tensor([16, 12, 7])[:, None]
    positions = torch.tensor([[3, 5, 9], [2, 8, 0], [4, 0, 0]])  # the last slots are padding predictions
    weights = torch.tensor([[1.0, 1, 1], [1, 1, 0], [1, 0, 0]])
    at = torch.where(weights > 0, MASK, ids.gather(1, positions))  # padding predictions mask nothing
    masked = ids.scatter(1, positions, at).masked_fill(~mask, 0)
    return ids.masked_fill(~mask, 0), {
        "input_ids": masked,
        "attention_mask": mask,
        "masked_lm_positions": positions,
        "masked_lm_ids": ids.gather(1, positions),
        "masked_lm_weights": weights,
    }


def test_gumbel_max_samples_the_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).expand(20000, 3)
    counts = torch.bincount(gumbel_max(logits, torch.Generator().manual_seed(0)), minlength=3) / 20000
    torch.testing.assert_close(counts, logits[0].softmax(-1), atol=0.015, rtol=0)
    assert gumbel_max(torch.tensor([[0.0, 50.0, 0.0]])).item() == 1


def test_the_generator_is_narrower_and_shares_the_embeddings():
    cfg, model = build()
    generator = cfg.generator()
    assert (generator.d_model, generator.n_heads, generator.d_ff) == (12, 1, 13)
    assert generator.d_model // generator.n_heads == cfg.d_model // cfg.n_heads  # the head size stays
    assert not any(isinstance(m, torch.nn.Embedding) for m in model.generator.modules())
    own = sum(p.numel() for p in model.generator.parameters())
    assert own < sum(p.numel() for n, p in model.named_parameters() if not n.startswith("generator.")) / 4


def test_the_discriminator_sees_the_samples_at_the_masked_positions_only():
    torch.manual_seed(1)
    _, model = build()
    original, inputs = batch()
    seen = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs["input_ids"]), with_kwargs=True
    )
    ElectraTask(ElectraTask.Config(), model.cfg, 0).loss(model, inputs)
    (corrupted,) = seen
    changed = (corrupted != original).nonzero().tolist()
    slots = zip(inputs["masked_lm_positions"].tolist(), inputs["masked_lm_weights"].tolist(), strict=True)
    allowed = {(b, p) for b, row in enumerate(slots) for p, w in zip(*row, strict=True) if w}
    assert {tuple(c) for c in changed} <= allowed
    assert corrupted[~inputs["attention_mask"]].eq(0).all() and not corrupted.eq(MASK).any()


def test_loss_parts_and_no_gradient_through_the_sample():
    _, model = build()
    _, inputs = batch()
    grads = []
    for weight in (50.0, 1.0):
        model.zero_grad()
        task = ElectraTask(ElectraTask.Config(disc_weight=weight), model.cfg, 0)
        torch.manual_seed(2)  # the same Gumbel noise
        loss, sums = task.loss(model, inputs)
        loss.backward()
        summary = task.summarize({key: float(value) for key, value in sums.items()})
        assert loss.item() == pytest.approx(summary["loss"], rel=1e-5)
        assert summary["loss"] == pytest.approx(summary["gen_loss"] + weight * summary["disc_loss"], rel=1e-6)
        assert sums["count"] == 6 and sums["tokens"] == 35
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    generator_only = [name for name in grads[0] if name.startswith("generator.")]
    assert generator_only and all(torch.equal(grads[0][n], grads[1][n]) for n in generator_only)
    assert not torch.equal(grads[0]["discriminator.0.weight"], grads[1]["discriminator.0.weight"])
    assert set(grads[0]) == {name for name, _ in model.named_parameters()}  # every parameter learns


def test_eval_is_deterministic():
    _, model = build()
    model.eval()
    task = ElectraTask(ElectraTask.Config(), model.cfg, 0)
    _, inputs = batch()
    with torch.no_grad():
        first, second = task.loss(model, inputs)[1], task.loss(model, inputs)[1]
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_a_model_without_a_generator_is_refused():
    cfg = TypeAdapter(ModelSpec).validate_python({"kind": "funnel", **SIZES})
    with pytest.raises(ConfigError, match=r"task electra needs a model with a generator and a discriminator"):
        ElectraTask(ElectraTask.Config(), cfg, 0)


def test_a_width_that_does_not_divide_the_sizes_is_one_config_error():
    data = {"kind": "funnel-electra", **SIZES, "d_ff": 50}
    with pytest.raises(ConfigError, match=r"must give whole generator sizes: d_ff 50 × 0.25"):
        validate(ModelFile, {"model": data}, "model.yaml")
