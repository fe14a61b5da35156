"""The pre-flight of `linctl validate` on the tiny configs: FLOPs against the matmul formula, the memory
estimate and the largest batch, and every problem of config, data and backend listed at once."""

from itertools import pairwise
from pathlib import Path

import pytest
import torch

from linctl.config.load import load_config
from linctl.models import MODELS
from linctl.models.file import read_model
from linctl.runtime.device import Backend, Precision, resolve_backend
from linctl.train.config import RunConfig
from linctl.validate.preflight import Preflight, validate_config, validate_run

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "configs" / "bench" / "tiny.yaml"  # encoder: d_model 32, 4 heads, 2 layers, d_ff 128, k 8
RUN = REPO / "configs" / "mlm" / "tiny.yaml"
CPU = resolve_backend("cpu")
LENGTH = 17  # the model file's is 512: traced at a tiny odd length instead


class Fixed(Backend):
    """A backend with ``memory`` bytes for a step and only the precisions ``dtypes``."""

    name = "fixed"
    dynamic_shapes = True
    compile_path = "none"

    def __init__(self, memory: int | None, dtypes: tuple[Precision, ...] = ("fp32", "bf16")) -> None:
        self.bytes, self.dtypes = memory, dtypes  # type: ignore[misc]

    def missing(self) -> str | None:
        return None

    def memory(self) -> int | None:
        return self.bytes

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


def model_step(batch: int, *overrides: str, backend: Backend = CPU) -> Preflight:
    """The pre-flight of bench's training step of the tiny model at LENGTH tokens."""
    found = validate_config(MODEL, [f"model.max_seq_length={LENGTH}", *overrides], backend, batch_size=batch)
    assert found.problems == [] and found.step is not None, found.problems
    return found


@pytest.mark.parametrize("attention", ["linformer", "softmax"])
def test_flops_of_a_step_are_the_matmuls_of_the_model(attention):
    chosen = {
        "softmax": ["model.attention={kind: softmax}"],
        "linformer": ["model.attention.projection_order=keys-first"],  # the order the formula below counts
    }[attention]
    B, T, C, L, d_ff, k = 3, LENGTH, 32, 2, 128, 8
    step = model_step(B, *chosen).step
    dense = 2 * B * T * C * 3 * C + 2 * B * T * C * C + 2 * (2 * B * T * C * d_ff)  # qkv, out, feed-forward
    mixing = {
        "softmax": 4 * B * T * T * C,  # Q·Kᵀ and P·V over every head
        "linformer": 2 * (2 * B * C * T * k) + 4 * B * T * k * C,  # E·K and F·V (one each a layer), k keys
    }
    assert step.flops_forward == L * (dense + mixing[attention])
    assert step.flops_backward == 2 * step.flops_forward  # the gradients of both operands of each product
    assert step.tokens == B * T


def test_flops_are_those_of_the_linformer_order_that_runs():
    keys_first = model_step(3, "model.attention.projection_order=keys-first").step
    auto = model_step(3).step  # headwise, d_model 32, k 8 at 17 tokens: the input first is cheaper
    assert auto.flops_forward < keys_first.flops_forward
    assert (
        auto.flops_forward == model_step(3, "model.attention.projection_order=input-first").step.flops_forward
    )


def test_parameters_are_counted_as_the_built_model_has_them():
    found = model_step(1)
    model = MODELS.build(read_model(MODEL, [f"model.max_seq_length={LENGTH}"]))
    assert found.parameters == sum(p.numel() for p in model.parameters())
    assert (
        found.parameters_by_module["Projections"] == 2 * 2 * 8 * LENGTH
    )  # headwise: E and F (k × n) a layer
    assert sum(found.parameters_by_module.values()) == found.parameters
    assert found.step.weights == 4 * found.parameters  # float32, tied embeddings counted once


def test_memory_estimate_is_positive_and_grows_with_the_batch():
    steps = [model_step(batch).step for batch in (1, 3, 9)]
    for small, large in pairwise(steps):
        assert 0 < small.activations < large.activations and small.peak < large.peak
        assert small.resident == large.resident and small.gradients == large.gradients
    for step in steps:
        assert step.batch == 8 * step.tokens  # int64 token ids
        assert step.optimizer == pytest.approx(2 * step.weights, rel=0.01)  # AdamW's two moments
        assert 0 < step.gradients <= step.weights
        assert step.peak > step.resident + step.activations


def test_the_largest_batch_is_estimated_from_the_memory_available():
    peak = model_step(8).step.peak
    exact = model_step(8, backend=Fixed(peak))
    assert exact.max_batch == 8  # fits, with no room for one more
    short = validate_config(MODEL, [f"model.max_seq_length={LENGTH}"], Fixed(peak - 1), batch_size=8)
    assert short.max_batch == 7
    (problem,) = short.problems
    assert problem.startswith("train.batch_size 8: a step needs an estimated ") and " fixed has " in problem
    assert "the largest batch estimated to fit is 7 (raise train.accumulate" in problem
    roomy = model_step(8, backend=Fixed(3 * peak))
    assert roomy.max_batch > 2 * 8
    # extrapolated from the traced batch: the estimated batch's own peak is near the memory available
    assert model_step(roomy.max_batch).step.peak == pytest.approx(3 * peak, rel=0.05)
    assert model_step(8, backend=Fixed(None)).max_batch is None  # a backend that manages memory itself


def tiny_run(shards: dict[str, Path], *overrides: str) -> RunConfig:
    dirs = [f"task.train_dir={shards['train']}", f"task.eval_dir={shards['eval']}"]
    return load_config(RUN, RunConfig, [*dirs, *overrides])


def test_a_run_config_with_its_data_is_traced_with_its_task_loss(tiny_shards):
    found = validate_run(tiny_run(tiny_shards, "model.attention.projection_order=keys-first"), CPU)
    assert found.problems == [] and found.step.batch_size == 3 and found.step.tokens == 3 * 16
    # configs/mlm/tiny.yaml: d_ff 64, Linformer k 7 with one matrix for keys and values (projecting keys
    # and values, the order the formula counts); vocabulary 211; the shards' 3 predictions a sequence
    B, T, C, L, d_ff, k, V, P = 3, 16, 32, 2, 64, 7, 211, 3
    layer = 2 * B * T * C * 4 * C + 2 * (2 * B * T * C * d_ff) + 2 * (2 * B * C * T * k) + 4 * B * T * k * C
    mlm_head = 2 * B * P * C * C + 2 * B * P * C * V  # dense, then the decoder at the masked positions
    assert found.step.flops_forward == L * layer + mlm_head
    assert found.step.flops_backward == 2 * found.step.flops_forward
    assert validate_run(tiny_run(tiny_shards), CPU, batch_size=5).step.tokens == 5 * 16


def test_data_and_backend_problems_are_listed_beside_a_traced_step(tiny_shards):
    cfg = tiny_run(tiny_shards, "model.max_seq_length=32", "train.precision=bf16")
    found = validate_run(cfg, Fixed(None, dtypes=("fp32",)))
    assert len(found.problems) == 3, found.problems
    train, evaluation, precision = found.problems
    assert train.startswith(f"task.train_dir {tiny_shards['train']}: ") and "max_seq_length 16" in train
    assert (
        evaluation.startswith(f"task.eval_dir {tiny_shards['eval']}: ") and "max_seq_length 16" in evaluation
    )
    assert precision == "train.precision bf16: backend fixed supports fp32"
    assert found.step is not None and found.step.tokens == 3 * 32  # traced at the config's length
    assert validate_run(cfg, CPU, data=False).problems == []


def test_an_invalid_config_lists_its_problems_with_those_of_its_data(tmp_path):
    absent = tmp_path / "absent"
    overrides = ["model.n_heads=5", f"task.train_dir={absent}", "task.eval_dir=null"]
    found = validate_config(RUN, overrides, CPU)
    assert found.problems == [
        f"{RUN}: model: d_model (32) must be divisible by n_heads (5); head size would be 6.4",
        f"task.train_dir {absent}: no such folder",
    ]
    assert found.step is None  # no model to trace
    assert validate_config(RUN, overrides, CPU, data=False).problems == found.problems[:1]
