"""Attention variants on tiny odd sizes: exact matches, padding, causality, sharing, config errors, grads."""

from typing import get_args

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter, ValidationError

from linctl.attention import ATTENTION, AttentionSpec
from linctl.attention.base import KVCache
from linctl.attention.linformer import CEREBRAS_STYLES, Sharing
from linctl.errors import InputError
from linctl.models import MODELS, ModelSpec
from linctl.runtime.flops import FlopCounterMode

B, T, C, H, L, V = 3, 16, 32, 4, 2, 97
SHARING = get_args(Sharing)
# Every registered kind with the options worth covering; a new kind must add its entry here.
OPTIONS = {
    "softmax": [{"impl": "sdpa"}, {"impl": "eager"}],
    "linformer": [{"k": 7, "sharing": s} for s in SHARING],
    "primal": [{"rank": 5, "causal": True}, {"rank": 5, "causal": False, "rank_multi": 2}],
}
VARIANTS = [{"kind": kind, **opts} for kind in ATTENTION.kinds() for opts in OPTIONS[kind]]
IDS = ["-".join(str(v) for v in spec.values()) for spec in VARIANTS]


def spec(**kw):
    return TypeAdapter(AttentionSpec).validate_python(kw)


def variants(having=lambda cfg: True):
    """The variants whose config has a property (what it declares of its outputs), as test parameters."""
    return [pytest.param(v, id=name) for v, name in zip(VARIANTS, IDS, strict=True) if having(spec(**v))]


def attention(n=T, **kw):
    """Build one attention layer for sequences of at most ``n`` tokens, in eval mode."""
    cfg = spec(**kw)
    shared = ATTENTION.cls(cfg).build_shared(cfg, C, H, n)
    return ATTENTION.build(cfg, C, H, n, shared).eval()


def model_cfg(**kw):
    sizes = dict(kind="encoder", vocab_size=V, d_model=C, n_heads=H, n_layers=L, d_ff=64, max_seq_length=T)
    return TypeAdapter(ModelSpec).validate_python(sizes | kw)


def lengths_mask(lengths, length=T):
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]  # (B, T), True at real tokens


def test_every_kind_is_covered():
    assert set(OPTIONS) == set(ATTENTION.kinds())


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_linformer_with_identity_projections_is_softmax(sharing, impl):
    softmax = attention(kind="softmax", impl=impl)
    linformer = attention(kind="linformer", k=T, sharing=sharing)
    missing, unexpected = linformer.load_state_dict(softmax.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("projections.") for name in missing)
    with torch.no_grad():
        for proj in (linformer.projections.e_proj, linformer.projections.f_proj):
            if proj is not None:
                proj.copy_(torch.eye(T).expand_as(proj))
    x = torch.randn(B, T, C)
    torch.testing.assert_close(linformer(x).out, softmax(x).out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_sdpa_matches_eager(causal):
    sdpa = attention(kind="softmax", impl="sdpa", causal=causal)
    eager = attention(kind="softmax", impl="eager", causal=causal)
    eager.load_state_dict(sdpa.state_dict())
    x, mask = torch.randn(B, T, C), lengths_mask([16, 11, 5])
    torch.testing.assert_close(eager(x, mask).out, sdpa(x, mask).out)
    torch.testing.assert_close(eager(x).out, sdpa(x).out)


# Primal's non-causal form reads landmark rows of the padded input, at positions set by its padded
# length: it declares no padding invariance.
@pytest.mark.parametrize("variant", variants(lambda cfg: cfg.padding_invariant))
def test_padded_positions_do_not_reach_real_tokens(variant):
    attn = attention(**variant)
    lengths = [16, 11, 5]
    x, mask = torch.randn(B, T, C), lengths_mask(lengths)
    x2 = x.clone()
    x2[~mask] = 1e6 * torch.randn(int((~mask).sum()), C)  # any content, even huge, at padded positions
    y, y2 = attn(x, mask).out, attn(x2, mask).out
    for b, n in enumerate(lengths):
        torch.testing.assert_close(y2[b, :n], y[b, :n])


@pytest.mark.parametrize("variant", variants(lambda cfg: cfg.padding_invariant))
def test_amount_of_trailing_padding_does_not_matter(variant):
    attn = attention(**variant)
    lengths = [11, 8, 3]
    x = torch.randn(B, T, C)
    short = attn(x[:, :11], lengths_mask(lengths, 11)).out
    long = attn(x, lengths_mask(lengths, T)).out
    for b, n in enumerate(lengths):
        torch.testing.assert_close(long[b, :n], short[b, :n])


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padded", [False, True])
def test_causal_softmax_ignores_the_future(impl, padded):
    attn = attention(kind="softmax", impl=impl, causal=True)
    mask = lengths_mask([16, 13, 12]) if padded else None
    x = torch.randn(B, T, C)
    x2 = x.clone()
    x2[:, 9:] += torch.randn(B, T - 9, C)  # change only the future
    torch.testing.assert_close(attn(x2, mask).out[:, :9], attn(x, mask).out[:, :9])
    assert not torch.allclose(attn(x2, mask).out[:, 9:12], attn(x, mask).out[:, 9:12])


def test_bidirectional_attention_sees_the_future():
    # the causal test above is only meaningful if the same change moves a non-causal layer's outputs
    attn = attention(kind="softmax")
    x = torch.randn(B, T, C)
    x2 = x.clone()
    x2[:, 9:] += 1.0
    assert not torch.allclose(attn(x2).out[:, :9], attn(x).out[:, :9])


def linformer_in_both_orders(sharing, k=7):
    """One Linformer layer (random biases) twice: projecting keys and values first, and the input first."""
    first = attention(kind="linformer", k=k, sharing=sharing, projection_order="keys-first")
    with torch.no_grad():
        first.qkv.bias.normal_()
    second = attention(kind="linformer", k=k, sharing=sharing, projection_order="input-first")
    second.load_state_dict(first.state_dict())
    return first, second


@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize("padded", [False, True])
def test_linformer_projection_orders_agree_forward_and_backward(sharing, padded):
    keys_first, input_first = linformer_in_both_orders(sharing)
    mask = lengths_mask([16, 11, 3]) if padded else None
    outputs, grads = [], []
    for layer in (keys_first, input_first):
        layer.train()  # attention dropout is 0: train mode takes the same paths, gradients included
        x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(5), requires_grad=True)
        y = layer(x, mask).out
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(6))
        outputs.append(y)
        grads.append(torch.autograd.grad((y * weights).sum(), [x, *layer.parameters()]))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for g_input, g_keys in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(g_input, g_keys, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sharing", ["none", "key-value"])
def test_linformer_projection_orders_agree_in_cross_attention_and_bf16(sharing):
    keys_first, input_first = linformer_in_both_orders(sharing)
    x, memory, mask = torch.randn(B, 5, C), torch.randn(B, 13, C), lengths_mask([13, 8, 2], 13)
    torch.testing.assert_close(
        input_first(x, mask, memory=memory).out, keys_first(x, mask, memory=memory).out, rtol=1e-5, atol=1e-5
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_input, y_keys = input_first(x, mask, memory=memory).out, keys_first(x, mask, memory=memory).out
    assert y_input.dtype == torch.bfloat16
    torch.testing.assert_close(y_input.float(), y_keys.float(), rtol=0.05, atol=0.05)


def counted_flops(layer, x):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        layer(x)
    return counter.get_total_flops()


# BERT-base sizes at n = 512 (input first wins when E is shared, loses with one E per head: H·k > d_model),
# and a small layer on fewer tokens than its n.
@pytest.mark.parametrize("sharing", SHARING)
@pytest.mark.parametrize(
    ("d_model", "heads", "n", "k", "tokens"), [(768, 12, 512, 128, 512), (32, 4, 64, 24, 30)]
)
def test_linformer_picks_the_order_with_fewer_flops(sharing, d_model, heads, n, k, tokens):
    layers = {}
    for order in ("auto", "keys-first", "input-first"):
        cfg = spec(kind="linformer", k=k, sharing=sharing, projection_order=order)
        layers[order] = ATTENTION.build(
            cfg, d_model, heads, n, ATTENTION.cls(cfg).build_shared(cfg, d_model, heads, n)
        )
    x = torch.randn(1, tokens, d_model)
    flops = {order: counted_flops(layer, x) for order, layer in layers.items()}
    cheaper = min(("keys-first", "input-first"), key=flops.__getitem__)
    assert layers["auto"].input_first(tokens) == (cheaper == "input-first")
    assert flops["auto"] == flops[cheaper] < max(flops.values())


@pytest.mark.parametrize(
    ("sharing", "matrices"), [("none", 2 * L * H), ("headwise", 2 * L), ("key-value", L), ("layerwise", 1)]
)
def test_projection_count_per_sharing_mode(sharing, matrices):
    model = MODELS.build(model_cfg(attention={"kind": "linformer", "k": 7, "sharing": sharing}))
    shapes = [p.shape for name, p in model.named_parameters() if name.endswith(("e_proj", "f_proj"))]
    assert all(shape[1:] == (7, T) for shape in shapes)
    assert sum(shape[0] for shape in shapes) == matrices


@pytest.mark.parametrize(("style", "sharing"), sorted(CEREBRAS_STYLES.items()))
def test_cerebras_names_select_linformer_sharing(style, sharing):
    cfg = spec(kind="linformer", attention_style=style, projected_dims=5)
    assert (cfg.sharing, cfg.k) == (sharing, 5)
    model = model_cfg(attention_style=style, projected_dims=5).attention
    assert (model.kind, model.sharing, model.k) == ("linformer", sharing, 5)


def test_cerebras_projected_dims_alone_selects_unshared_linformer():
    cfg = model_cfg(projected_dims=6).attention
    assert (cfg.kind, cfg.sharing, cfg.k) == ("linformer", "none", 6)
    assert not hasattr(model_cfg().attention, "k")  # without the Cerebras keys the default stays softmax


def test_linformer_rejects_causal():
    with pytest.raises(ValidationError, match="causal"):
        spec(kind="linformer", causal=True)
    with pytest.raises(ValidationError, match="causal"):
        model_cfg(attention={"kind": "linformer", "k": 8, "causal": True})


def test_linformer_k_must_fit_max_seq_length():
    model_cfg(attention={"kind": "linformer", "k": T})
    with pytest.raises(ValidationError, match=r"k \(17\).*max_seq_length \(16\)"):
        model_cfg(attention={"kind": "linformer", "k": T + 1})
    with pytest.raises(ValidationError, match=r"k \(17\)"):
        model_cfg(projected_dims=T + 1)


def test_unknown_attention_style_lists_the_allowed_ones():
    with pytest.raises(ValidationError) as err:
        spec(kind="linformer", attention_style="linformer-shared-everything")
    assert "linformer-shared-everything" in str(err.value)
    assert all(style in str(err.value) for style in CEREBRAS_STYLES)
    with pytest.raises(ValidationError, match="linformer-shared-heads"):
        model_cfg(attention_style="linformer-shared-everything")


def test_linformer_rejects_sequences_longer_than_max_seq_length():
    attn = attention(kind="linformer", k=7)
    attn(torch.randn(B, T, C))
    with pytest.raises(InputError, match=rf"{T + 1} tokens.*max_seq_length \({T}\)"):
        attn(torch.randn(B, T + 1, C))


def test_d_model_must_divide_by_n_heads():
    with pytest.raises(ValidationError, match=r"d_model \(30\).*n_heads \(4\)"):
        model_cfg(d_model=30)
    with pytest.raises(ValueError, match="divisible"):
        ATTENTION.build(spec(kind="softmax"), 30, 4, T, None)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValidationError, match="softmax"):
        spec(kind="no-such-attention")


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_gradients_reach_every_parameter(variant):
    model = MODELS.build(model_cfg(attention=variant, dropout=0.0))
    ids, mask = torch.randint(0, V, (B, T)), lengths_mask([16, 13, 9])
    positions = torch.tensor([[1, 4, 15], [0, 7, 12], [2, 3, 8]])  # (B, P)
    out = model(ids, mask)
    logits = model.mlm_logits(out.hidden, positions)  # (B, P, V)
    loss = F.cross_entropy(logits.reshape(-1, V), torch.randint(0, V, (positions.numel(),)))
    (loss + out.aux_loss).backward()  # some parameters (Primal's Λ) are trained by the auxiliary loss alone
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# Primal-Attention has no cross-attention form (the reference has none): it declares so, refuses memory.
@pytest.mark.parametrize("variant", variants(lambda cfg: cfg.cross_attention))
def test_cross_attention_reads_the_memory_and_ignores_its_padding(variant):
    attn = attention(**variant)
    x, memory = torch.randn(B, 5, C), torch.randn(B, 11, C)  # 5 queries over 11 encoder states
    mask = lengths_mask([11, 7, 2], 11)
    y = attn(x, mask, memory=memory).out
    assert y.shape == (B, 5, C)
    changed = memory.clone()
    changed[~mask] = 1e6 * torch.randn(int((~mask).sum()), C)
    torch.testing.assert_close(attn(x, mask, memory=changed).out, y)
    moved = memory.clone()
    moved[0, 3] += 1.0  # a real memory position moves every query of its sequence
    assert not torch.allclose(attn(x, mask, memory=moved).out[0], y[0])


@pytest.mark.parametrize("variant", variants(lambda cfg: cfg.cross_attention))
def test_cross_attention_over_the_input_itself_is_self_attention(variant):
    attn = attention(**variant)
    x, mask = torch.randn(B, T, C), lengths_mask([16, 10, 4])
    torch.testing.assert_close(attn(x, mask, memory=x).out, attn(x, mask).out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_decoding_with_a_cache_matches_the_whole_causal_sequence(impl):
    attn = attention(kind="softmax", impl=impl, causal=True)
    x = torch.randn(B, 9, C)
    whole = attn(x).out
    cache = KVCache()
    first = attn(x[:, :4], cache=cache).out  # a prompt of 4, then one token at a time
    steps = [attn(x[:, t : t + 1], cache=cache).out for t in range(4, 9)]
    assert cache.length == 9
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), whole, rtol=1e-5, atol=1e-6)


def test_cross_attention_cache_computes_the_memory_once():
    attn = attention(kind="softmax")
    memory, cache = torch.randn(B, 11, C), KVCache()
    x = torch.randn(B, 3, C)
    first = attn(x, memory=memory, cache=cache).out
    assert cache.length == 11
    # the cached keys and values are used even when another memory is passed
    torch.testing.assert_close(attn(x, memory=torch.zeros_like(memory), cache=cache).out, first)


@pytest.mark.parametrize("variant", variants(lambda cfg: not cfg.cross_attention))
def test_a_kind_without_cross_attention_refuses_memory(variant):
    with pytest.raises(ValueError, match="no cross-attention"):
        attention(**variant)(torch.randn(B, 5, C), memory=torch.randn(B, 11, C))


@pytest.mark.parametrize("variant", variants(lambda cfg: not cfg.causal))
def test_a_bidirectional_variant_refuses_a_decoding_cache(variant):
    attn = attention(**variant)
    with pytest.raises(ValueError, match="cannot decode with a cache"):
        attn(torch.randn(B, 3, C), cache=attn.new_cache())


@pytest.mark.parametrize("variant", variants(lambda cfg: not cfg.reports_aux_loss))
def test_kinds_without_an_auxiliary_loss_report_zero(variant):
    aux = attention(**variant)(torch.randn(B, T, C)).aux_loss
    assert aux.shape == () and float(aux) == 0.0


def test_bench_learns_each_kind_from_its_declarations():
    for kind in ATTENTION.kinds():
        config = ATTENTION.classes[kind].Config
        assert set(config.swept) <= set(config.model_fields)
        for values in config.baselines.values():
            config(**values)  # each baseline is a valid variant of its kind


def test_a_quiet_field_is_named_in_bench_labels_only_away_from_its_default():
    from linctl.bench.options import label_of

    for kind in ATTENTION.kinds():
        config = ATTENTION.classes[kind].Config
        assert set(config.quiet) <= set(config.model_fields) - set(config.swept)
    assert label_of(spec(kind="linformer", k=8, sharing="headwise")) == "linformer k=8 sharing=headwise"
    forced = spec(kind="linformer", k=8, sharing="headwise", projection_order="keys-first")
    assert label_of(forced) == "linformer k=8 sharing=headwise projection_order=keys-first"
