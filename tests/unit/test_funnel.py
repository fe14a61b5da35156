"""The Funnel-Transformer on tiny odd sizes: pooling, lengths, relative attention, the decoder."""

import pytest
import torch
from pydantic import TypeAdapter

from linctl.config.load import validate
from linctl.errors import ConfigError
from linctl.models import MODELS, ModelSpec
from linctl.models.file import ModelFile
from linctl.models.funnel import FunnelConfig, RelativeBias, pool, sinusoid, stride_pool

B, C, H, V = 3, 36, 3, 97
SIZES = dict(vocab_size=V, d_model=C, n_heads=H, d_ff=53, max_seq_length=40, dropout=0.0)
LAYOUTS = [  # separate_cls, truncate_seq, pool_q_only
    pytest.param(True, True, True, id="cls-truncate-pool_q"),
    pytest.param(True, False, False, id="cls-pool_qkv"),
    pytest.param(False, True, True, id="no_cls-pool_q"),
    pytest.param(False, False, False, id="no_cls-pool_qkv"),
]


def build(kind="funnel", **kw):
    spec = TypeAdapter(ModelSpec).validate_python({"kind": kind, **SIZES, "block_sizes": [2, 1, 2]} | kw)
    return MODELS.build(spec).eval()


def inputs(T, lengths=None):
    ids = torch.randint(0, V, (B, T))
    segments = (torch.arange(T) >= T // 2).long().expand(B, T).clone()
    mask = torch.arange(T)[None] < torch.tensor(lengths or [T, T - 4, 5])[:, None]
    return ids, mask, segments


def relative_calls(model):
    """Record (module, q, k, queries, keys) of every RelativeBias call of the next forward."""
    calls = []
    for module in model.modules():
        if isinstance(module, RelativeBias):
            module.register_forward_hook(
                lambda m, args, kwargs, out: calls.append((m, *args, kwargs["queries"], kwargs["keys"])),
                with_kwargs=True,
            )
    return calls


def explicit_positions(module, q, queries, keys):
    """The position term by an explicit gather: PE(pos_i − pos_j) for every pair, then W_r."""
    rel = queries.positions()[:, None] - keys.positions()[None, :]  # (T, S)
    r = torch.einsum("ijc,chd->ijhd", sinusoid(rel, C), module.position_kernel)  # (T, S, H, D)
    qv = (q + module.position_bias[:, None]) * q.size(-1) ** -0.5
    return torch.einsum("bhid,ijhd->bhij", qv, r)


@pytest.mark.parametrize(("separate_cls", "truncate_seq", "pool_q_only"), LAYOUTS)
def test_relative_shift_equals_an_explicit_gather_in_every_block(separate_cls, truncate_seq, pool_q_only):
    layout = dict(separate_cls=separate_cls, truncate_seq=truncate_seq, pool_q_only=pool_q_only)
    model = build(block_sizes=[2, 2, 2], **layout)
    calls = relative_calls(model)
    with torch.no_grad():
        model(*inputs(19))
    strides = {(queries.stride, keys.stride) for _, _, _, queries, keys in calls}
    assert {(1, 1), (2, 2), (4, 4)} <= strides  # every block and the decoder
    assert ((2, 1) in strides) == pool_q_only and ((4, 2) in strides) == pool_q_only
    for module, q, _, queries, keys in calls:
        torch.testing.assert_close(
            module.position_scores(q, queries, keys), explicit_positions(module, q, queries, keys)
        )


@pytest.mark.parametrize(("separate_cls", "truncate_seq", "pool_q_only"), LAYOUTS)
@pytest.mark.parametrize("kind", ["funnel"])  # the encoder's blocks and the decoder
def test_factorized_equals_relative_shift(kind, separate_cls, truncate_seq, pool_q_only):
    layout = dict(separate_cls=separate_cls, truncate_seq=truncate_seq, pool_q_only=pool_q_only)
    shift = build(kind, attention_type="relative_shift", **layout)
    factorized = build(kind, attention_type="factorized", **layout)
    factorized.load_state_dict(shift.state_dict())
    ids, mask, segments = inputs(17)
    torch.testing.assert_close(
        factorized(ids, mask, segments).hidden, shift(ids, mask, segments).hidden, atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(("T", "lengths"), [(16, [16, 8, 4]), (17, [17, 9, 5])])
def test_lengths_halve_per_block_and_the_decoder_restores_them(T, lengths):
    model = build(block_sizes=[1, 1, 1])
    calls = relative_calls(model)
    ids, mask, segments = inputs(T)
    hidden = model(ids, mask, segments).hidden
    assert hidden.shape == (B, T, C)
    # per call (query length, key length): block 1; block 2's pooled layer, then block 3's; the decoder
    seen = [(queries.length, keys.length) for _, _, _, queries, keys in calls]
    assert (
        seen == [(lengths[0], lengths[0]), (lengths[1], lengths[0]), (lengths[2], lengths[1])] + [(T, T)] * 2
    )
    assert build("funnel-classifier", block_sizes=[1, 1, 1])(ids, mask, segments).hidden.shape == (
        B,
        lengths[2],
        C,
    )
    assert model.cfg.block_lengths(T) == lengths


def test_pool_q_only_first_layer_reads_pooled_queries_over_unpooled_keys():
    model = build(block_sizes=[1, 2, 1])
    calls = relative_calls(model)
    model(*inputs(20))
    shapes = [(q.size(2), k.size(2)) for _, q, k, _, _ in calls]
    assert shapes[:4] == [(20, 20), (10, 20), (10, 10), (5, 10)]


@pytest.mark.parametrize("mode", ["mean", "max"])
@pytest.mark.parametrize("truncate_seq", [True, False])
def test_cls_survives_pooling(mode, truncate_seq):
    cfg = FunnelConfig.model_construct(separate_cls=True, truncate_seq=truncate_seq)
    x = torch.randn(B, 11, C)
    pooled = pool(x, mode, cfg)
    assert pooled.shape == (B, cfg.pooled_length(11), C)
    assert torch.equal(pooled[:, 0], x[:, 0])  # never merged with another token
    body = x[:, 1:-1] if truncate_seq else x[:, 1:]
    expected = (body[:, 0] + body[:, 1]) / 2 if mode == "mean" else torch.maximum(body[:, 0], body[:, 1])
    torch.testing.assert_close(pooled[:, 1], expected)
    segments = torch.tensor([[2, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1]])
    assert stride_pool(segments, cfg)[0, 0] == 2


def test_cls_state_reaches_the_classifier_from_index_0():
    model = build("funnel-classifier")
    ids, mask, segments = inputs(16)
    other = ids.clone()
    other[:, 0] = (ids[:, 0] + 1) % V  # another [CLS] token changes index 0 of the last block
    before, after = model(ids, mask, segments).hidden, model(other, mask, segments).hidden
    assert not torch.allclose(before[:, 0], after[:, 0])
    assert model.classify(before).shape == (B, 2)


def test_mask_pooling_marks_a_window_padding_when_any_token_is():
    cfg = FunnelConfig.model_construct(separate_cls=True, truncate_seq=False)
    mask = torch.tensor(
        [[True] * 6 + [False] * 3, [True] * 5 + [False] * 4]
    )  # windows (1,2) (3,4) (5,6) (7,8)
    assert pool(mask, "all", cfg).tolist() == [
        [True, True, True, False, False],
        [True, True, True, False, False],
    ]


def test_block_notation_and_repeats_share_parameters_and_keep_depth():
    shared = build(block_sizes="6_3x2_3x2")
    assert shared.cfg.block_sizes == (6, 3, 3) and shared.cfg.block_repeats == (1, 2, 2)
    full = build(block_sizes=[6, 6, 6])
    assert shared.cfg.n_layers == full.cfg.n_layers == 18
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert count(shared) < count(full)
    calls = relative_calls(shared), relative_calls(full)
    shared(*inputs(8)), full(*inputs(8))
    assert len(calls[0]) == len(calls[1]) == 18 + 2  # layer applications (+ the decoder's 2)


def test_gradients_reach_every_parameter():
    model = build(dropout=0.1).train()
    ids, mask, segments = inputs(16)
    out = model(ids, mask, segments)
    loss = model.mlm_logits(out.hidden, torch.tensor([[1, 5]] * B)).logsumexp(-1).sum()
    loss.backward()
    assert [name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()] == []


@pytest.mark.parametrize(
    "attention",
    [{"kind": "linformer", "k": 4, "sharing": "key-value"}, {"kind": "primal", "rank": 3, "rank_multi": 2}],
    ids=["linformer", "primal"],
)
def test_other_attention_kinds_run_without_relative_terms(attention):
    pool_q_only = attention["kind"] != "primal"  # Primal cannot read another sequence's keys
    model = build(attention=attention, attention_type="none", pool_q_only=pool_q_only, max_seq_length=16)
    assert not any(isinstance(m, RelativeBias) for m in model.modules())
    hidden = model(*inputs(16)).hidden
    assert hidden.shape == (B, 16, C) and hidden.isfinite().all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"attention": {"kind": "linformer", "k": 4}},
            "attention_type relative_shift adds relative-position",
        ),
        ({"attention": {"kind": "primal"}, "attention_type": "none"}, "set pool_q_only: false"),
        ({"attention": {"kind": "linformer", "k": 12}, "attention_type": "none"}, "a block of 10 tokens"),
        ({"block_sizes": "6_3y2"}, "write blocks as SIZE or SIZExREPEATS"),
        ({"block_sizes": [2, 2], "block_repeats": [1]}, "block_repeats [1] must have one entry per block"),
        ({"n_layers": 7}, "n_layers (7) is set by block_sizes × block_repeats (5)"),
        ({"d_model": 35, "n_heads": 5}, "needs an even d_model (35)"),
    ],
)
def test_bad_configs_are_one_config_error(changes, message):
    data = {"kind": "funnel", **SIZES, "block_sizes": [2, 1, 2], "max_seq_length": 40} | changes
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        validate(ModelFile, {"model": data}, "model.yaml")


def test_a_funnel_of_one_block_is_a_plain_encoder():
    flat = build(block_sizes=[3], n_decoder_layers=0)
    encoder = build("funnel-classifier", block_sizes=[3])
    encoder.load_state_dict(flat.state_dict(), strict=False)
    ids, mask, segments = inputs(15)
    torch.testing.assert_close(flat(ids, mask, segments).hidden, encoder(ids, mask, segments).hidden)


@pytest.mark.slow  # torch.export of the whole model
@pytest.mark.parametrize("kind", ["funnel-classifier", "funnel"])
def test_exported_funnel_serves_other_batch_sizes(kind):
    from linctl.export.compile import example_inputs, export_model

    model = build(kind, block_sizes=[1, 1, 1], max_seq_length=17)
    exported = export_model(model, example_inputs(model.cfg, 3, torch.device("cpu"), seed=0))
    for batch in (1, 5):
        inputs = example_inputs(model.cfg, batch, torch.device("cpu"), seed=batch)  # (B, T) each
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(*inputs.values()), model(**inputs).hidden)
