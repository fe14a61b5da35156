"""The measuring machinery of `linctl bench`: timers, memory meters, FLOP counts, isolation, search."""

import subprocess
import sys
import time

import pytest
import torch

from linctl.bench.case import Case
from linctl.bench.measure import OOM_TEXT, measure, run_isolated
from linctl.bench.search import largest_batch
from linctl.bench.timing import time_repeats
from linctl.bench.workload import PADDED_BATCHES, lengths_of

DIMS = {"d_model": 36, "n_heads": 4}
SOFTMAX = {"kind": "softmax", "impl": "sdpa"}
LINFORMER = {"kind": "linformer", "k": 5, "sharing": "layerwise"}


def test_time_repeats_excludes_warmup_and_times_each_repeat():
    calls = []

    def work():
        calls.append(time.perf_counter())
        time.sleep(0.01 if len(calls) > 2 else 0.2)  # slow warm-up calls must not show in the times

    times = time_repeats(work, warmup=2, repeats=3, device=torch.device("cpu"))
    assert len(calls) == 5 and len(times) == 3
    assert all(0.01 <= t < 0.15 for t in times)


METER_SCRIPT = """
import torch
from linctl.bench.timing import MemoryMeter, mmap_threshold
mmap_threshold(16 << 10)
meter = MemoryMeter(torch.device("cpu"))
meter.start()
block = torch.ones(12 << 20)  # 48 MiB, touched
del block
print(meter.peak())
"""


def test_cpu_memory_meter_sees_a_tensor_allocated_and_freed_in_between():
    # One measurement per process, as the worker does: a test process's heap history would blur it.
    out = subprocess.run([sys.executable, "-c", METER_SCRIPT], capture_output=True, text=True, check=True)
    assert 48 << 20 <= int(out.stdout) < 60 << 20


@pytest.mark.parametrize("largest", [0, 1, 2, 3, 7, 8, 9, 100, 1000])
def test_largest_batch_finds_the_boundary_in_logarithmic_probes(largest):
    probes = []

    def fits(b):
        probes.append(b)
        return b <= largest

    assert largest_batch(fits) == largest
    assert len(probes) <= 2 * max(1, largest).bit_length() + 2


def test_largest_batch_stops_at_the_limit():
    assert largest_batch(lambda b: True, limit=40) == 32


def test_flops_of_an_attention_block_are_its_matmuls():
    B, n, C = 3, 17, DIMS["d_model"]
    projections = 2 * B * n * C * 3 * C + 2 * B * n * C * C  # qkv and out
    soft = run_isolated(Case(what="attention", attention=SOFTMAX, model=DIMS, n=n, batch=B, repeats=2), 120)
    assert soft.status == "ok" and soft.tokens == B * n and len(soft.times) == 2
    assert soft.flops == projections + 4 * B * n * n * C  # Q·Kᵀ and P·V over every head
    k = LINFORMER["k"]
    keys_first = LINFORMER | {"projection_order": "keys-first"}
    # in this process: one worker above has shown the way through run_isolated
    lin = measure(Case(what="attention", attention=keys_first, model=DIMS, n=n, batch=B, repeats=1))
    assert lin.flops == projections + 2 * (2 * B * C * n * k) + 4 * B * n * k * C  # E·K, F·V, then k keys
    assert lin.peak_bytes is not None and lin.peak_bytes > 0
    # the default order here projects the input first: E·X once (keys and values share E), E·1 for the
    # biases (once: no padding), W_K and W_V on k rows, then k keys
    auto = measure(Case(what="attention", attention=LINFORMER, model=DIMS, n=n, batch=B, repeats=1))
    q_and_out = 2 * (2 * B * n * C * C)
    assert (
        auto.flops == q_and_out + 2 * B * k * n * C + 2 * n * k + 2 * (2 * B * k * C * C) + 4 * B * n * k * C
    )
    assert auto.flops < lin.flops


@pytest.mark.slow  # two workers
def test_train_mode_counts_the_backward_pass_too():
    case = Case(what="attention", attention=SOFTMAX, model=DIMS, n=9, batch=2, repeats=1)
    forward = run_isolated(case, 120).flops
    train = run_isolated(case.model_copy(update={"mode": "train"}), 120).flops
    # Backward is about twice the forward; the inputs need no gradient, so slightly less here.
    assert forward is not None and train is not None and 2.0 * forward < train < 3.0 * forward


def test_running_out_of_memory_is_a_result_not_a_crash():
    # The eager T×T scores alone need 4·H·n² bytes, 4 GiB: far above the 4 MiB budget and the address
    # space the worker gives itself for it (budget and a 1 GiB margin), so the allocation fails.
    case = Case(
        what="attention", attention={"kind": "softmax", "impl": "eager"}, model=DIMS, n=16384, budget=4 << 20
    )
    result = run_isolated(case, 120)
    assert result.status == "oom" and any(text in result.message.lower() for text in OOM_TEXT)


def test_a_peak_over_the_budget_is_out_of_memory_even_when_allocations_succeed():
    # The input alone, 5 × 257 × 36 floats, is 180 KiB: the peak is over a 64 KiB budget, while the
    # address space allows the budget and a 1 GiB margin.
    case = Case(what="attention", attention=SOFTMAX, model=DIMS, n=257, batch=5, repeats=1, budget=64 << 10)
    over = run_isolated(case, 120)
    assert over.status == "oom" and "over the budget" in over.message


def test_a_case_that_runs_too_long_is_a_timeout():
    case = Case(
        what="attention", attention={"kind": "softmax", "impl": "eager"}, model=DIMS, n=2048, repeats=1000
    )
    result = run_isolated(case, timeout=1)  # minutes of work: stopped wherever it is after a second
    assert result.status == "timeout" and result.message == "stopped after 1 s"


def test_padded_cases_bucket_our_batches_and_pad_peers_to_n():
    case = Case(what="model", n=64, batch=5, padded=True, seed=3)
    ours, theirs = lengths_of(case), lengths_of(case.model_copy(update={"peer": "linformer"}))
    assert len(ours) == PADDED_BATCHES and all(len(b) == 5 for b in ours)
    flat = [n for batch in ours for n in batch]
    assert sorted(flat) == sorted(n for batch in theirs for n in batch)  # the same sequences
    assert flat == sorted(flat) and all(16 <= n <= 64 for n in flat)
