"""The encoder-decoder and its decoding: teacher forcing equals step-by-step decoding, beam 1 equals
greedy, the cache changes nothing, a Linformer encoder ignores source padding, and config errors."""

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from linctl.models import MODELS, ModelSpec
from linctl.models.generate import DecodeOptions, Special, beam_search, greedy

B, S, C, H, V = 3, 13, 32, 4, 97
SPECIAL = Special(bos=2, eos=3)
ENCODERS = {
    "softmax": {"kind": "softmax"},
    "linformer-kv": {"kind": "linformer", "k": 5, "sharing": "key-value"},
    "linformer-layerwise": {"kind": "linformer", "k": 5, "sharing": "layerwise"},
}


def seq2seq(**kw):
    sizes = dict(kind="seq2seq", vocab_size=V, d_model=C, n_heads=H, n_layers=2, decoder_layers=3, d_ff=64,
                 max_seq_length=S, max_target_length=21)  # fmt: skip
    torch.manual_seed(0)
    return MODELS.build(TypeAdapter(ModelSpec).validate_python(sizes | kw)).eval()


def sources(lengths=(13, 9, 4)):
    ids = torch.randint(4, V, (len(lengths), S))
    mask = torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]
    return ids.masked_fill(~mask, 0), mask


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("cross", ["softmax", "linformer"])
def test_a_sources_encoding_and_translation_do_not_depend_on_its_padding(encoder, cross):
    model = seq2seq(
        attention=ENCODERS[encoder],
        cross_attention={"kind": cross, "k": 5} if cross == "linformer" else {"kind": cross},
    )
    ids, mask = sources()
    target = torch.randint(4, V, (B, 6))
    padded = model(ids, target, mask).logits
    for row, n in enumerate(mask.sum(1).tolist()):
        alone = model(ids[row : row + 1, :n], target[row : row + 1]).logits
        torch.testing.assert_close(padded[row : row + 1], alone, atol=1e-5, rtol=1e-5)
        encoded = model.encode(ids[row : row + 1, :n]).hidden
        torch.testing.assert_close(model.encode(ids, mask).hidden[row, :n], encoded[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("share", [True, False])
def test_decoding_step_by_step_with_the_cache_equals_teacher_forcing(norm_first, share):
    model = seq2seq(norm_first=norm_first, share_embeddings=share, tie_output=share)
    ids, mask = sources()
    target = torch.randint(4, V, (B, 7))
    whole = model(ids, target, mask).logits
    memory = model.encode(ids, mask).hidden
    cache = model.new_cache()
    steps = [model.decode(target[:, t : t + 1], memory, mask, cache=cache).logits for t in range(7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_beam_search_with_beam_1_is_greedy(encoder):
    model = seq2seq(attention=ENCODERS[encoder])
    ids, mask = sources()
    opts = DecodeOptions(beam=1, max_len_a=1.0, max_len_b=3)
    found = greedy(model, ids, mask, SPECIAL, opts)
    assert found == beam_search(model, ids, mask, SPECIAL, opts)
    assert [len(row) for row in found] == [
        15,
        11,
        6,
    ]  # an untrained model runs to a × source + b, </s> included


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("early_stop", [True, False])
def test_decoding_with_the_cache_equals_decoding_without_it(beam, early_stop):
    model = seq2seq(attention=ENCODERS["linformer-kv"])
    ids, mask = sources()
    # An output layer that favours </s> after a few tokens, so that hypotheses end at different lengths.
    with torch.no_grad():
        model.target_tokens.weight[SPECIAL.eos] *= 4
    cached = DecodeOptions(beam=beam, early_stop=early_stop, length_penalty=0.6, max_len_a=1.0, max_len_b=2)
    run = greedy if beam == 1 else beam_search
    with_cache = run(model, ids, mask, SPECIAL, cached)
    without = run(model, ids, mask, SPECIAL, cached.model_copy(update={"use_cache": False}))
    assert with_cache == without
    assert all(SPECIAL.eos not in row and SPECIAL.bos not in row for row in with_cache)


def test_beam_search_finds_a_hypothesis_at_least_as_likely_as_greedy():
    model = seq2seq()
    ids, mask = sources()
    opts = DecodeOptions(beam=4, length_penalty=0.0, max_len_a=0.0, max_len_b=5)

    @torch.no_grad()
    def logprob(rows):
        memory = model.encode(ids, mask).hidden
        total = []
        for b, row in enumerate(rows):
            target = torch.tensor([[SPECIAL.bos, *row]])
            logp = model.decode(target, memory[b : b + 1], mask[b : b + 1]).logits.log_softmax(-1)[0]
            ends = [*row, SPECIAL.eos][: logp.size(0)]
            total.append(float(sum(logp[t, token] for t, token in enumerate(ends))))
        return total

    greedy_scores = logprob(greedy(model, ids, mask, SPECIAL, opts))
    beam_scores = logprob(beam_search(model, ids, mask, SPECIAL, opts))
    assert all(b >= g - 1e-4 for b, g in zip(beam_scores, greedy_scores, strict=True))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"attention": {"kind": "softmax", "causal": True}}, "the encoder sees the whole source"),
        ({"cross_attention": {"kind": "primal"}}, "primal attention cannot read the encoder's states"),
        (
            {"cross_attention": {"kind": "linformer", "k": 64}},
            "linformer k (64) is larger than max_seq_length (13)",
        ),
    ],
)
def test_a_config_the_model_cannot_build_is_refused(section, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        seq2seq(**section)


def test_example_inputs_drive_a_forward_with_masks():
    sizes = dict(kind="seq2seq", vocab_size=V, d_model=C, n_heads=H, n_layers=1, d_ff=64, max_seq_length=S)
    cfg = TypeAdapter(ModelSpec).validate_python(sizes)
    inputs = cfg.example_inputs(B, 11, lengths=[11, 5, 2])
    out = MODELS.build(cfg)(**inputs)
    assert out.logits.shape == (B, 11, V) and out.aux_loss.shape == ()
