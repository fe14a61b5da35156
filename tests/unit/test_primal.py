"""Primal-Attention against the reference done by hand: prefix means, landmarks, KSVD loss, cache, init."""

import math

import pytest
import torch
import torch.nn.functional as F
from pydantic import TypeAdapter, ValidationError

from linctl.attention import ATTENTION, AttentionSpec
from linctl.attention.primal import PrimalAttention, PrimalCache
from linctl.config.load import validate
from linctl.errors import ConfigError
from linctl.models.encoder import EncoderModel

B, T, C, H, S = 3, 16, 32, 4, 5  # S: the rank s
D = C // H
CAUSAL = {"rank": S, "causal": True}
BIDIRECTIONAL = {"rank": S, "causal": False, "rank_multi": 2}  # 10 landmarks of at most 16 positions
FORMS = [pytest.param(CAUSAL, id="causal"), pytest.param(BIDIRECTIONAL, id="non-causal")]


def primal(n=T, **kw) -> PrimalAttention:
    """Build a Primal layer for sequences of at most ``n`` tokens, in eval mode."""
    cfg = TypeAdapter(AttentionSpec).validate_python({"kind": "primal", **kw})
    return ATTENTION.build(cfg, C, H, n, None).eval()


def by_hand(layer: PrimalAttention, x: torch.Tensor, normalise_first: bool = False):
    """Return the reference's scores e, r (B, H, T, s) and output (B, T, C), a position and head at a time."""
    Bx, Tx, _ = x.shape
    q, k = layer.q_proj(x), layer.k_proj(x)  # (B, T, C)
    e, r = torch.zeros(Bx, H, Tx, S, dtype=x.dtype), torch.zeros(Bx, H, Tx, S, dtype=x.dtype)
    heads = torch.zeros(Bx, Tx, C, dtype=x.dtype)
    landmarks = torch.linspace(0, Tx - 1, layer.landmarks).long()
    for b in range(Bx):
        for h in range(H):
            cols = slice(h * D, (h + 1) * D)
            if layer.cfg.causal:
                w_e, w_r = layer.w_e[h], layer.w_r[h]  # (D, s)
            else:
                rows = x[b, landmarks, cols].T  # (D, L̃): this head's channels of the input at the landmarks
                w_e, w_r = rows @ layer.w_e[h], rows @ layer.w_r[h]
            for t in range(Tx):
                if not layer.cfg.causal:
                    q_t, k_t = F.normalize(q[b, t, cols], dim=0), F.normalize(k[b, t, cols], dim=0)
                elif normalise_first:
                    q_t = F.normalize(q[b, : t + 1, cols], dim=1).mean(0)
                    k_t = F.normalize(k[b, : t + 1, cols], dim=1).mean(0)
                else:
                    q_t = F.normalize(q[b, : t + 1, cols].mean(0), dim=0)
                    k_t = F.normalize(k[b, : t + 1, cols].mean(0), dim=0)
                e[b, h, t], r[b, h, t] = q_t @ w_e, k_t @ w_r
                heads[b, t, cols] = layer.w_c(torch.cat([e[b, h, t], r[b, h, t]]))
    return e, r, layer.out(heads)


def ksvd_loop(layer: PrimalAttention, e: torch.Tensor, r: torch.Tensor) -> float:
    """L_KSVD as the reference's fairseq criterion defines it, with Python loops over b, h, t and rank."""
    lam, w_e, w_r = layer.lam.tolist(), layer.w_e.tolist(), layer.w_r.tolist()
    Bx, _, Tx, _ = e.shape
    e, r = e.tolist(), r.tolist()
    trace = 0.0
    for h in range(H):
        for i in range(len(w_e[h])):
            for j in range(S):
                trace += w_e[h][i][j] * w_r[h][i][j] / H
    total = 0.0
    for b in range(Bx):
        j_e = j_r = 0.0
        for h in range(H):
            for t in range(Tx):
                for j in range(S):
                    j_e += lam[h][j] ** 2 * e[b][h][t][j] ** 2
                    j_r += lam[h][j] ** 2 * r[b][h][t][j] ** 2
        total += ((j_e + j_r) / (2 * H * Tx) - trace) ** 2
    return total / Bx


def test_causal_outputs_do_not_see_the_future():
    layer = primal(**CAUSAL)
    x = torch.randn(B, T, C)
    for t in (0, 6, T - 2):
        x2 = x.clone()
        x2[:, t + 1] += torch.randn(B, C)  # change only token t + 1
        y, y2 = layer(x).out, layer(x2).out
        torch.testing.assert_close(y2[:, : t + 1], y[:, : t + 1])
        assert not torch.allclose(y2[:, t + 1], y[:, t + 1])


def test_the_non_causal_form_sees_the_future():
    layer = primal(**BIDIRECTIONAL)
    x = torch.randn(B, T, C)
    x2 = x.clone()
    x2[:, 9:] += torch.randn(B, T - 9, C)
    assert not torch.allclose(layer(x2).out[:, :9], layer(x).out[:, :9])


@pytest.mark.parametrize("form", FORMS)
def test_forward_and_ksvd_loss_match_the_spec_by_hand(form):
    layer = primal(**form, ksvd_weight=0.3).double()
    x = torch.randn(2, 7, C, dtype=torch.float64)
    e, r, y = by_hand(layer, x)
    out = layer(x)
    torch.testing.assert_close(out.out, y)
    torch.testing.assert_close(layer.ksvd_loss(e, r).item(), ksvd_loop(layer, e, r))
    torch.testing.assert_close(out.aux_loss.item(), 0.3 * ksvd_loop(layer, e, r))
    assert out.aux_loss.item() > 0


def test_prefix_means_are_taken_before_the_normalisation():
    layer = primal(**CAUSAL).double()
    x = torch.randn(2, 7, C, dtype=torch.float64)
    _, _, averaged_first = by_hand(layer, x)
    _, _, normalised_first = by_hand(layer, x, normalise_first=True)
    torch.testing.assert_close(layer(x).out, averaged_first)
    assert not torch.allclose(normalised_first, averaged_first)  # the order is observable


def test_ksvd_weight_zero_reports_no_auxiliary_loss_and_eval_still_reports_it():
    x = torch.randn(B, T, C)
    assert primal(**CAUSAL, ksvd_weight=0.0)(x).aux_loss.item() == 0.0
    layer = primal(**CAUSAL)
    assert not layer.training and layer(x).aux_loss.item() > 0  # callers decide whether to use it


def test_decoding_with_the_cache_matches_the_whole_sequence():
    layer = primal(**CAUSAL)
    x = torch.randn(B, 9, C)
    whole = layer(x).out
    cache = layer.new_cache()
    assert isinstance(cache, PrimalCache)
    first = layer(x[:, :4], cache=cache).out  # a prompt of 4, then one token at a time
    steps = [layer(x[:, t : t + 1], cache=cache).out for t in range(4, 9)]
    assert cache.length == 9
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), whole, rtol=1e-5, atol=1e-6)
    # what the original decoder did, the last token alone, is not the same function
    assert not torch.allclose(layer(x[:, 8:9]).out, whole[:, 8:9])


def test_masks_are_ignored_by_the_causal_form_and_zero_padded_rows_of_the_other():
    mask = torch.arange(T)[None, :] < torch.tensor([16, 11, 5])[:, None]  # (B, T)
    x = torch.randn(B, T, C)
    causal = primal(**CAUSAL)
    torch.testing.assert_close(causal(x, mask).out, causal(x).out)
    layer = primal(**BIDIRECTIONAL)
    y = layer(x, mask).out
    torch.testing.assert_close(y[~mask], layer.out.bias.expand(int((~mask).sum()), C))
    torch.testing.assert_close(y[mask], layer(x).out[mask])


@pytest.mark.parametrize("form", FORMS)
def test_initialisation_follows_the_spec(form):
    layer = primal(**form)
    for w in (layer.w_e, layer.w_r):
        flat = w.detach().reshape(H, -1)  # (H, rows·s): orthogonal_ made these rows orthonormal
        torch.testing.assert_close(flat.norm(dim=1), torch.ones(H))
        torch.testing.assert_close(flat @ flat.T, torch.eye(H))
    assert ((layer.lam >= 0) & (layer.lam < 1)).all()
    for proj, gain in ((layer.q_proj, 1 / math.sqrt(2)), (layer.k_proj, 1 / math.sqrt(2)), (layer.out, 1.0)):
        assert proj.weight.abs().max() <= gain * math.sqrt(6 / (2 * C))  # Xavier-uniform's bound
    assert (layer.out.bias == 0).all()
    names = {name for name, _ in layer.named_parameters()}
    assert names == {
        *(f"{proj}.{part}" for proj in ("q_proj", "k_proj", "out", "w_c") for part in ("weight", "bias")),
        "w_e",
        "w_r",
        "lam",
    }  # no value projection


@pytest.mark.parametrize(
    ("form", "n", "rows"),
    [(CAUSAL, T, D), (BIDIRECTIONAL, T, 2 * S), (BIDIRECTIONAL | {"rank_multi": 10}, T, T)],
    ids=["causal", "landmarks-s-times-rank-multi", "landmarks-capped-at-max-length"],
)
def test_shapes(form, n, rows):
    layer = primal(n, **form)
    assert layer.w_e.shape == layer.w_r.shape == (H, rows, S)
    assert layer.lam.shape == (H, S) and layer.w_c.weight.shape == (D, 2 * S)
    for length in (T, 7):
        x = torch.randn(B, length, C)
        out = layer(x)
        assert out.out.shape == (B, length, C) and out.aux_loss.shape == ()
    if not form["causal"]:
        assert all(w.shape == (B, H, D, S) for w in layer.data_dependent_projections(x))


def test_the_defaults_build_and_run():
    cfg = PrimalAttention.Config()
    assert (cfg.rank, cfg.rank_multi, cfg.ksvd_weight, cfg.causal) == (30, 10, 0.1, False)
    layer = ATTENTION.build(cfg, C, H, 512, None)
    assert layer.landmarks == 300 and layer.w_e.shape == (H, 300, 30)
    out = layer(torch.randn(B, T, C))  # 16 tokens, 300 landmarks: positions repeat
    assert out.out.shape == (B, T, C) and out.aux_loss.item() > 0


@pytest.mark.parametrize("form", FORMS)
def test_gradients_reach_every_parameter_through_output_and_loss(form):
    layer = primal(**form).train()
    out = layer(torch.randn(B, T, C))
    (out.out.square().mean() + out.aux_loss).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_landmarks_are_linspace_positions():
    layer = primal(**BIDIRECTIONAL)
    assert layer.landmarks == 10
    for length in (T, 13, 7):  # at 7 < 10 positions repeat, as linspace gives
        expected = torch.linspace(0, length - 1, 10).long()
        assert torch.equal(layer.landmark_positions(length, torch.device("cpu")), expected)
    assert layer.landmark_positions(7, torch.device("cpu")).unique().numel() == 7


@pytest.mark.parametrize(("key", "value"), [("ksvd_weight", -0.1), ("rank", 0), ("rank_multi", 0)])
def test_bad_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ValidationError, match=key):
        PrimalAttention.Config(**{key: value})
    model = {"kind": "encoder", "vocab_size": 97, "attention": {"kind": "primal", key: value}}
    with pytest.raises(ConfigError, match=rf"attention\.{key} = {value}"):
        validate(EncoderModel.Config, model, "model.yaml")
