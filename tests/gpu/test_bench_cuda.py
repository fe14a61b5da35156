"""`linctl bench` on a CUDA device: event timing, the allocator's peak, out-of-memory as a result."""

import json

import pytest
import torch

from linctl.bench.case import Case
from linctl.bench.measure import run_isolated

pytestmark = pytest.mark.gpu

DIMS = {"d_model": 64, "n_heads": 4}


@pytest.fixture(autouse=True)
def _needs_cuda():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cuda_cases_are_timed_and_their_peak_taken(dtype):
    linformer = {"kind": "linformer", "k": 16, "sharing": "layerwise"}
    case = Case(what="attention", attention=linformer, model=DIMS, n=1024, batch=4, device="cuda",
                dtype=dtype, repeats=3)  # fmt: skip
    result = run_isolated(case, 300)
    assert result.status == "ok" and len(result.times) == 3 and all(t > 0 for t in result.times)
    assert result.peak_bytes > 0 and result.flops > 0


def test_cuda_out_of_memory_is_a_result():
    free, _ = torch.cuda.mem_get_info()
    n = 1 << 16  # eager scores of 4·H·n² bytes per sequence: 64 GiB at 4 heads
    case = Case(what="attention", attention={"kind": "softmax", "impl": "eager"}, model=DIMS, n=n,
                batch=max(1, free // (4 * 4 * n * n) + 1), device="cuda", repeats=1)  # fmt: skip
    assert run_isolated(case, 300).status == "oom"


def test_cli_bench_on_cuda(cli, tmp_path):
    cli("bench", "--device", "cuda", "--precision", "bf16", "--preset", "small", "--seq-len", "1024,4096",
        "--repeats", "3", "--json", tmp_path / "b.json")  # fmt: skip
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)  # softmax ×2, linformer k ×2; n ×2
