"""`linctl validate` and `linctl compile` for the cuda backend; run where a GPU is lent (`pytest -m gpu`)."""

import json
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "mlm" / "tiny.yaml"


def test_validate_estimates_against_the_free_device_memory(cli, tmp_path):
    report = tmp_path / "validate.json"
    cli("validate", "--config", TINY, "--no-data", "--device", "cuda", "--json", report)
    found = json.loads(report.read_text())
    assert found["backend"] == "cuda" and found["ok"]
    free, _ = torch.cuda.mem_get_info()
    assert 0 < found["memory_available"] <= free * 1.05
    assert found["max_batch"] > found["step"]["batch_size"]


def test_compile_for_cuda_matches_eager(cli, tmp_path):
    out = tmp_path / "package"
    cli("compile", "--config", TINY, "--device", "cuda", "--output-dir", out, "--check")
    report = json.loads((out / "compile-report.json").read_text())
    assert report["backend"] == "cuda" and report["check"]["passed"]
    assert report["check"]["max_abs_diff"] <= 1e-4
