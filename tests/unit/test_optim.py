"""Learning-rate schedules and AdamW's weight-decay groups."""

import itertools
import math

import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from linctl.models import MODELS, ModelSpec
from linctl.train.optim import OptimConfig, build_optimizer, learning_rate

LR, END, WARMUP, TOTAL = 1e-3, 1e-5, 4, 20
SCHEDULES = ["linear", "inverse-sqrt", "constant"]


def rates(schedule: str, warmup: int = WARMUP, total: int = TOTAL, end_lr: float = END) -> list[float]:
    cfg = OptimConfig(lr=LR, warmup_steps=warmup, schedule=schedule, end_lr=end_lr)
    return [learning_rate(cfg, step, total) for step in range(total)]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_warmup_rises_linearly_to_lr_at_its_last_step(schedule):
    lrs = rates(schedule)
    assert lrs[:WARMUP] == pytest.approx([LR * (step + 1) / WARMUP for step in range(WARMUP)])
    assert lrs[WARMUP - 1] == pytest.approx(LR)
    assert all(a < b for a, b in itertools.pairwise(lrs[:WARMUP]))


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("warmup", [0, 1, WARMUP, TOTAL - 1])
def test_rates_stay_within_0_and_lr_and_never_rise_after_warmup(schedule, warmup):
    lrs = rates(schedule, warmup)
    assert all(0.0 < lr <= LR * (1 + 1e-12) for lr in lrs)
    after = lrs[max(warmup - 1, 0) :]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(after))


@pytest.mark.parametrize("warmup", [0, WARMUP])
def test_linear_decay_ends_at_end_lr_on_the_last_step(warmup):
    lrs = rates("linear", warmup)
    assert lrs[-1] == pytest.approx(END)
    after = lrs[max(warmup - 1, 0) :]
    steps = [a - b for a, b in itertools.pairwise(after)]
    assert steps == pytest.approx([steps[0]] * len(steps))  # a straight line
    assert all(step > 0 for step in steps)


def test_linear_decay_to_zero_by_default():
    cfg = OptimConfig(lr=LR, warmup_steps=WARMUP)
    assert cfg.schedule == "linear" and cfg.end_lr == 0.0
    assert learning_rate(cfg, TOTAL - 1, TOTAL) == 0.0


@pytest.mark.parametrize("warmup", [0, 1, WARMUP])
def test_inverse_sqrt_decays_as_the_root_of_warmup_over_step(warmup):
    lrs = rates("inverse-sqrt", warmup)
    for step in range(max(warmup, 1) - 1, TOTAL):
        done = step + 1  # optimizer steps taken once this one is done
        assert lrs[step] == pytest.approx(LR * math.sqrt(max(warmup, 1) / done))
    assert lrs[4 * max(warmup, 1) - 1] == pytest.approx(LR / 2)  # four times the steps, half the rate


def test_constant_stays_at_lr_after_warmup():
    assert rates("constant")[WARMUP - 1 :] == pytest.approx([LR] * (TOTAL - WARMUP + 1))
    assert rates("constant", warmup=0) == pytest.approx([LR] * TOTAL)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.proj = nn.Linear(6, 5)
        self.norm = nn.LayerNorm(5)
        self.kernel = nn.Parameter(torch.randn(2, 3, 5))
        self.frozen = nn.Linear(5, 5)
        self.frozen.requires_grad_(False)


def tiny_encoder() -> nn.Module:
    sizes = dict(kind="encoder", vocab_size=97, d_model=32, n_heads=4, n_layers=2, d_ff=64, max_seq_length=16)
    attention = {"kind": "linformer", "k": 7, "sharing": "headwise"}
    return MODELS.build(TypeAdapter(ModelSpec).validate_python(sizes | {"attention": attention}))


@pytest.mark.parametrize("make", [Small, tiny_encoder], ids=["small", "encoder"])
def test_1d_params_get_no_weight_decay_and_each_trainable_param_is_in_one_group(make):
    model = make()
    cfg = OptimConfig(weight_decay=0.05)
    optimizer = build_optimizer(model, cfg)
    seen = [id(p) for group in optimizer.param_groups for p in group["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(seen) == len(set(seen)) and set(seen) == trainable
    for group in optimizer.param_groups:
        assert group["lr"] == cfg.lr and tuple(group["betas"]) == cfg.betas and group["eps"] == cfg.eps
        for p in group["params"]:
            assert group["weight_decay"] == (0.0 if p.ndim < 2 else 0.05), tuple(p.shape)
    assert any(p.ndim < 2 for g in optimizer.param_groups for p in g["params"])  # biases, norms exist
