"""The model contract, for every registered family: example inputs, the output record, heads as
capabilities, stages built per sequence length, auxiliary losses summed through the blocks."""

from typing import Any, Literal

import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import Tensor

from linctl.attention.base import Attention
from linctl.attention.softmax import SoftmaxAttention
from linctl.models import MODELS, ModelOutput, ModelSpec
from linctl.models.base import Classifier, LanguageModel, MaskedLM, ReplacedTokenDetector
from linctl.models.layers import Block, build_stage, run_stage

B, T, C, H, L, V = 3, 16, 32, 4, 2, 97
SIZES = dict(vocab_size=V, d_model=C, n_heads=H, n_layers=L, d_ff=64, max_seq_length=T)
# What each registered family may need beyond the sizes every model has; a new family adds its entry.
EXTRA: dict[str, dict[str, Any]] = {
    "encoder": {},
    "classifier": {"num_labels": 3},
    "decoder": {},
    "seq2seq": {},
}
EXTRA["funnel"] = {"block_sizes": [1, 1]}  # two blocks; the decoder restores the input length
EXTRA["funnel-electra"] = {"block_sizes": [1, 1]}  # and a generator a quarter as wide
EXTRA["funnel-classifier"] = {"block_sizes": [2], "num_labels": 3}  # one block: states at the input length
ATTENTIONS = [
    {"kind": "softmax"},
    {"kind": "linformer", "k": 7, "sharing": "layerwise"},
    {"kind": "primal", "rank": 5},  # non-causal in an encoder, causal in a decoder
]


def config(kind: str, **kw: Any) -> Any:
    return TypeAdapter(ModelSpec).validate_python({"kind": kind, **SIZES, **EXTRA[kind], **kw})


def fits(kind: str, attention: dict[str, Any]) -> bool:
    """Whether a family takes an attention (a decoder takes causal kinds only)."""
    try:
        config(kind, attention=attention)
    except ValidationError:
        return False
    return True


PAIRS = [(kind, a) for kind in MODELS.kinds() for a in ATTENTIONS if fits(kind, a)]


def test_every_family_is_covered():
    assert set(EXTRA) == set(MODELS.kinds())
    assert {kind for kind, _ in PAIRS} == set(MODELS.kinds())  # each runs with at least one attention


@pytest.mark.parametrize(("kind", "attention"), PAIRS, ids=lambda p: p if isinstance(p, str) else p["kind"])
def test_example_inputs_run_the_model_and_give_an_output_record(kind, attention):
    cfg = config(kind, attention=attention)
    model = MODELS.build(cfg).eval()
    inputs = cfg.example_inputs(B, 13, lengths=[13, 9, 1], generator=torch.Generator().manual_seed(0))
    assert inputs["attention_mask"].sum(1).tolist() == [13, 9, 1]
    again = cfg.example_inputs(B, 13, lengths=[13, 9, 1], generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(inputs[name], again[name]) for name in inputs)  # seeded: the same inputs
    out = model(**inputs)
    assert isinstance(out, ModelOutput) and out.hidden.shape == (B, 13, C)
    assert out.aux_loss.shape == () and (out.aux_loss.item() > 0.0) == cfg.attention.reports_aux_loss
    assert out.primary is (out.hidden if out.logits is None else out.logits)
    full = cfg.example_inputs(B, T)
    assert "attention_mask" not in full and model(**full).hidden.shape == (B, T, C)


@pytest.mark.parametrize("kind", MODELS.kinds())
def test_example_lengths_are_checked(kind):
    with pytest.raises(ValueError, match=r"must be 3 values in \[1, 13\]"):
        config(kind).example_inputs(B, 13, lengths=[13, 14, 1])


def test_heads_are_capabilities_of_the_model_classes():
    assert issubclass(MODELS.classes["encoder"], MaskedLM)
    assert not issubclass(MODELS.classes["encoder"], Classifier)
    assert issubclass(MODELS.classes["classifier"], Classifier)
    assert not issubclass(MODELS.classes["classifier"], MaskedLM)
    assert issubclass(MODELS.classes["decoder"], LanguageModel)
    assert issubclass(MODELS.classes["funnel"], MaskedLM)
    assert issubclass(MODELS.classes["funnel-classifier"], Classifier)
    assert issubclass(MODELS.classes["funnel-electra"], ReplacedTokenDetector)
    assert not issubclass(MODELS.classes["funnel"], ReplacedTokenDetector)
    assert not issubclass(MODELS.classes["encoder"], LanguageModel)


def test_stages_at_two_lengths_share_projections_within_each_stage():
    cfg = config("encoder", attention={"kind": "linformer", "k": 4, "sharing": "layerwise"})
    long, short = build_stage(cfg, 2, T), build_stage(cfg, 3, T // 2)
    assert long[0].attention.projections is long[1].attention.projections
    assert short[0].attention.projections is short[2].attention.projections
    assert long[0].attention.projections.e_proj.shape == (1, 4, T)
    assert short[0].attention.projections.e_proj.shape == (1, 4, T // 2)
    x = torch.randn(B, T, C)
    y, _ = run_stage(long, x, None)
    pooled = y.view(B, T // 2, 2, C).mean(2)  # what a funnel does between stages
    z, aux = run_stage(short, pooled, None)
    assert z.shape == (B, T // 2, C) and float(aux) == 0.0


@pytest.mark.parametrize("norm_first", [False, True])
def test_a_decoder_block_reads_the_encoder_through_cross_attention(norm_first):
    cfg = config("encoder", norm_first=norm_first, attention={"kind": "softmax", "causal": True})
    (block,) = build_stage(cfg, 1, T, cross=SoftmaxAttention.Config(), memory_length=11)
    block.eval()
    x, memory = torch.randn(B, 5, C), torch.randn(B, 11, C)
    mask = torch.arange(11)[None, :] < torch.tensor([11, 6, 2])[:, None]
    y, aux = block(x, None, memory=memory, memory_mask=mask)
    assert y.shape == (B, 5, C) and float(aux) == 0.0
    changed = memory.clone()
    changed[~mask] = 100.0  # padding of the encoder's states does not reach the decoder
    torch.testing.assert_close(block(x, None, memory=changed, memory_mask=mask)[0], y)
    assert not torch.allclose(block(x, None, memory=memory + 1.0, memory_mask=mask)[0], y)


class PenalisedAttention(SoftmaxAttention):
    """Softmax attention that reports the mean square of its queries as an auxiliary loss."""

    class Config(SoftmaxAttention.Config):
        kind: Literal["penalised"] = "penalised"  # type: ignore[assignment]

    def mix(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        return super().mix(q, k, v, mask), q.square().mean()


def test_auxiliary_losses_of_every_layer_are_summed():
    cfg = config("encoder")
    blocks = torch.nn.ModuleList(
        Block(PenalisedAttention(PenalisedAttention.Config(), C, H, T, None), cfg) for _ in range(3)
    ).eval()
    x = torch.randn(B, T, C)
    _, aux = run_stage(blocks, x, None)
    expected, h = 0.0, x
    with torch.no_grad():
        for block in blocks:
            q = block.attention.qkv(block.norm1(h) if cfg.norm_first else h)[..., :C]
            expected += float(q.square().mean())
            h, _ = block(h, None)
    assert aux.item() == pytest.approx(expected, rel=1e-5) and aux.item() > 0
    aux.backward()  # the loss reaches the parameters that made it
    assert all(block.attention.qkv.weight.grad is not None for block in blocks)


def test_attention_is_the_base_of_every_registered_kind():
    from linctl.attention import ATTENTION

    assert all(issubclass(ATTENTION.classes[kind], Attention) for kind in ATTENTION.kinds())
