"""The BERT-style MLM encoder on tiny odd sizes, with every attention variant."""

from typing import get_args

import pytest
import torch
from pydantic import TypeAdapter

from linctl.attention import ATTENTION, AttentionSpec
from linctl.attention.linformer import Sharing
from linctl.models import MODELS, ModelSpec

B, T, C, H, L, V = 3, 16, 32, 4, 2, 97
OPTIONS = {
    "softmax": [{"impl": "sdpa"}, {"impl": "eager"}],
    "linformer": [{"k": 7, "sharing": s} for s in get_args(Sharing)],
    "primal": [{"rank": 5, "causal": True}, {"rank": 5, "causal": False, "rank_multi": 2}],
}
VARIANTS = [{"kind": kind, **opts} for kind in ATTENTION.kinds() for opts in OPTIONS[kind]]
IDS = ["-".join(str(v) for v in spec.values()) for spec in VARIANTS]


def encoder(**kw):
    """Build a tiny encoder in eval mode (dropout stays at its default 0.1 unless given)."""
    sizes = dict(kind="encoder", vocab_size=V, d_model=C, n_heads=H, n_layers=L, d_ff=64, max_seq_length=T)
    return MODELS.build(TypeAdapter(ModelSpec).validate_python(sizes | kw)).eval()


def lengths_mask(lengths, length=T):
    return torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]  # (B, T), True at real tokens


@pytest.mark.parametrize("length", [T, 13])
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_output_shapes(variant, length):
    model = encoder(attention=variant)
    hidden = model(torch.randint(0, V, (B, length)), lengths_mask([length, 9, 4], length)).hidden
    assert hidden.shape == (B, length, C) and hidden.isfinite().all()
    logits = model.mlm_logits(hidden, torch.tensor([[0, 5], [3, 8], [1, 2]]))  # (B, P=2)
    assert logits.shape == (B, 2, V) and logits.isfinite().all()


def test_mlm_logits_read_the_given_positions():
    model = encoder()
    hidden = model(torch.randint(0, V, (B, 13))).hidden
    positions = torch.tensor([[0, 5, 12], [3, 8, 1], [12, 2, 2]])
    picked = model.mlm_logits(hidden, positions)
    for b in range(B):
        torch.testing.assert_close(picked[b], model.mlm(hidden[b, positions[b]]))


def test_mlm_decoder_is_tied_to_the_token_embedding():
    model = encoder()
    assert model.mlm.decoder.weight is model.embeddings.tokens.weight
    assert model.mlm.decoder.weight.shape == (V, C)
    with torch.no_grad():
        model.embeddings.tokens.weight[7] += 1.0  # an update to one is an update to the other
    torch.testing.assert_close(model.mlm.decoder.weight[7], model.embeddings.tokens.weight[7])


def test_no_segment_embedding_when_segment_vocab_size_is_0():
    model = encoder(segment_vocab_size=0)
    assert model.embeddings.segments is None
    assert not any("segments" in name for name, _ in model.named_parameters())
    assert model(torch.randint(0, V, (B, T))).hidden.shape == (B, T, C)


def test_segment_ids_change_the_output():
    model = encoder(segment_vocab_size=2)
    ids = torch.randint(0, V, (B, T))
    segments = (torch.arange(T) >= 8).long().expand(B, T)
    torch.testing.assert_close(
        model(ids, None, torch.zeros_like(ids)).hidden, model(ids).hidden
    )  # default: segment 0
    assert not torch.allclose(model(ids, None, segments).hidden, model(ids).hidden)


# Primal's non-causal form reads landmark rows of the padded input, at positions set by its padded
# length: it declares no padding invariance.
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(v, id=name)
        for v, name in zip(VARIANTS, IDS, strict=True)
        if TypeAdapter(AttentionSpec).validate_python(v).padding_invariant
    ],
)
def test_padding_does_not_change_real_tokens(variant, norm_first):
    model = encoder(attention=variant, norm_first=norm_first)
    lengths = [11, 8, 3]
    ids, mask = torch.randint(0, V, (B, T)), lengths_mask(lengths)
    other = torch.where(mask, ids, torch.randint(0, V, (B, T)))  # other tokens at padded positions
    short = model(ids[:, :11], mask[:, :11]).hidden  # the same real tokens with less padding
    hidden, other_hidden = model(ids, mask).hidden, model(other, mask).hidden
    for b, n in enumerate(lengths):
        torch.testing.assert_close(other_hidden[b, :n], hidden[b, :n])
        torch.testing.assert_close(short[b, :n], hidden[b, :n])


@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_eval_is_deterministic_and_train_uses_dropout(variant):
    model = encoder(attention=variant | {"dropout": 0.1}, dropout=0.1)
    ids, mask = torch.randint(0, V, (B, T)), lengths_mask([16, 13, 9])
    torch.testing.assert_close(model(ids, mask).hidden, model(ids, mask).hidden, rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(ids, mask).hidden, model(ids, mask).hidden)


def test_norm_first_adds_a_final_norm_and_changes_the_function():
    post, pre = encoder(), encoder(norm_first=True)
    assert post.final_norm is None and pre.final_norm is not None
    pre.load_state_dict(post.state_dict(), strict=False)  # the same weights, arranged pre-LN
    ids = torch.randint(0, V, (B, 13))
    hidden = pre(ids).hidden
    assert hidden.shape == (B, 13, C) and hidden.isfinite().all()
    assert not torch.allclose(hidden, post(ids).hidden)
