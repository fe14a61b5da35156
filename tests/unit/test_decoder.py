"""The causal decoder LM (fairseq's transformer_lm shape) with every causal attention kind: causality,
incremental decoding, padding, tied output, per-layer attention and its config errors."""

import math

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from linctl.attention import ATTENTION
from linctl.errors import InputError
from linctl.models import MODELS, ModelSpec
from linctl.models.base import LanguageModel
from linctl.models.decoder import sinusoids

B, T, C, H, L, V = 3, 16, 32, 4, 3, 97


def causal_kinds() -> list[str]:
    """The registered kinds that have a causal form."""
    found = []
    for kind in ATTENTION.kinds():
        try:
            ATTENTION.classes[kind].Config(causal=True)
        except ValidationError:
            continue
        found.append(kind)
    return found


def decoder(**kw):
    sizes = dict(kind="decoder", vocab_size=V, d_model=C, n_heads=H, n_layers=L, d_ff=64, max_seq_length=T)
    return MODELS.build(TypeAdapter(ModelSpec).validate_python(sizes | kw)).eval()


def mixed(kind: str) -> dict:
    """Softmax everywhere but the last layer, which is ``kind`` (the paper's Primal.+Trans. shape)."""
    return {"layers": {"default": "softmax", L - 1: {"kind": kind}}}


def test_softmax_is_a_causal_kind_and_linformer_is_not():
    assert "softmax" in causal_kinds() and "linformer" not in causal_kinds()


@pytest.mark.parametrize("kind", causal_kinds())
def test_changing_a_later_token_leaves_earlier_logits_unchanged(kind):
    model = decoder(**mixed(kind))
    ids = torch.randint(0, V, (B, T))
    later = ids.clone()
    later[:, 9] = (later[:, 9] + 1) % V  # token t + 1 = 9
    before, after = model(ids).logits, model(later).logits
    torch.testing.assert_close(after[:, :9], before[:, :9])
    assert not torch.allclose(after[:, 9:], before[:, 9:])


@pytest.mark.parametrize("kind", causal_kinds())
def test_decoding_with_the_cache_equals_the_whole_forward(kind):
    model = decoder(**mixed(kind))
    ids = torch.randint(0, V, (B, 11))
    whole = model(ids).logits
    cache = model.new_cache()
    steps = [model(ids[:, :4], cache=cache).logits]  # a prompt of 4, then one token at a time
    steps += [model(ids[:, t : t + 1], cache=cache).logits for t in range(4, 11)]
    assert cache.length == 11
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", causal_kinds())
def test_right_padding_does_not_change_real_tokens(kind):
    model = decoder(**mixed(kind))
    ids = torch.randint(0, V, (B, T))
    mask = torch.arange(T)[None, :] < torch.tensor([16, 11, 5])[:, None]
    padded = ids.masked_fill(~mask, 0)
    out = model(padded, mask).logits
    for b, n in enumerate([16, 11, 5]):
        torch.testing.assert_close(out[b, :n], model(ids[b : b + 1, :n]).logits[0])


def test_output_layer_is_the_token_embedding():
    model = decoder()
    out = model(torch.randint(0, V, (B, T)))
    torch.testing.assert_close(out.logits, out.hidden @ model.tokens.weight.T)
    assert isinstance(model, LanguageModel)
    names = [name for name, _ in model.named_parameters()]
    assert not any("head" in name or "output" in name for name in names)  # nothing but the tied weight


def test_embeddings_are_scaled_and_positions_sinusoidal():
    table = sinusoids(5, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0] * 4 + [1.0] * 4))  # sin 0, cos 0
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0)))  # the fastest rate is 1
    model = decoder()
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    ids = torch.tensor([[5, 7, 11]])
    model(ids)
    expected = model.tokens(ids) * math.sqrt(C) + sinusoids(T, C)[:3]  # what the first block receives
    torch.testing.assert_close(seen[0], expected)


def test_layers_take_their_own_attention():
    model = decoder(layers={"default": {"kind": "softmax"}, 2: {"kind": "softmax", "impl": "eager"}})
    impls = [block.attention.cfg.impl for block in model.blocks]
    assert impls == ["sdpa", "sdpa", "eager"]
    assert all(block.attention.cfg.causal for block in model.blocks)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"layers": {3: "softmax"}}, "layers.3: there are layers 0 to 2"),
        ({"attention": {"kind": "softmax", "causal": False}}, "must be causal"),
        ({"attention": {"kind": "linformer", "k": 4}}, "Linformer has no causal form"),
        ({"attention": "softmax", "layers": {"default": "softmax"}}, "not both"),
    ],
)
def test_bad_layer_configs_are_refused(extra, message):
    with pytest.raises(ValidationError, match=message):
        decoder(**extra)


def test_a_sequence_longer_than_the_model_is_refused():
    with pytest.raises(InputError, match=r"longer than model\.max_seq_length"):
        decoder()(torch.randint(0, V, (1, T + 1)))
