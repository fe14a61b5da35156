"""`linctl validate`: shipped configs pass, broken copies list every problem, the memory estimate
agrees with what `linctl bench` measures for the same step."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))
TINY = REPO / "configs" / "mlm" / "tiny.yaml"
BASE_SIZED = {"linformer-base", "roberta-base", "base-linformer"}


def problems_of(result) -> list[str]:
    """Return the listed problems of a validate run that must have failed with exit 2."""
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "problem" in lines[0], result.stderr
    return [line.strip().removeprefix("- ") for line in lines[1:]]


def run_validate(cli, tmp_path: Path, *args, ok: bool = True) -> tuple[object, dict]:
    report = tmp_path / "validate.json"
    result = cli("validate", *args, "--json", report, ok=ok)
    return result, json.loads(report.read_text())


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "config",
    [pytest.param(c, marks=pytest.mark.slow) if any(s in c.stem for s in BASE_SIZED) else c for c in CONFIGS],
    ids=lambda path: str(path.relative_to(REPO / "configs")),
)
def test_every_shipped_config_passes_without_data(cli, tmp_path, config):
    _, report = run_validate(cli, tmp_path, "--config", config, "--no-data")
    assert report["ok"] and report["problems"] == [] and report["schema_version"] == 1
    if "step" in report:  # run and model configs are traced
        assert report["parameters"] > 0 and report["step"]["flops_train_per_token"] > 0
        assert report["step"]["bytes"]["peak"] > report["step"]["bytes"]["weights"] > 0


def test_tiny_config_with_its_data(cli, tmp_path, tiny_run):
    result, report = run_validate(cli, tmp_path, *tiny_run[:6])
    assert report["ok"], report["problems"]
    assert "checked" in result.stdout and "would train" in result.stdout
    step = report["step"]
    assert step["batch_size"] == 3 and step["tokens"] == 3 * 16
    # Linformer key-value sharing: one k×n matrix per layer, k = 7, n = 16, 2 layers
    assert report["parameters_by_module"]["Projections"] == 2 * 7 * 16
    assert sum(report["parameters_by_module"].values()) == report["parameters"]
    # training costs about three forward passes (the backward pass does two products per forward one)
    assert 2.5 < step["flops_train_per_token"] / step["flops_forward_per_token"] <= 3.0


def test_a_broken_copy_lists_every_problem(cli, tmp_path, tiny_shards):
    shards = tmp_path / "train"
    shutil.copytree(tiny_shards["train"], shards)
    missing = sorted(shards.glob("*.arrow"))[0]
    missing.unlink()
    config = yaml.safe_load(TINY.read_text())
    config["model"].update(n_heads=5, vocab_size=300)
    config["model"]["attention"]["k"] = 40
    config["task"].update(train_dir=str(shards), eval_dir=str(tiny_shards["eval"]))
    broken = write_yaml(tmp_path / "broken.yaml", config)

    problems = problems_of(cli("validate", "--config", broken, ok=False))

    assert len(problems) == 4, problems
    heads, k, gone, vocab = problems
    assert "d_model (32)" in heads and "n_heads (5)" in heads
    assert "k (40)" in k and "max_seq_length (16)" in k
    assert "task.train_dir" in gone and missing.name in gone and "missing" in gone
    assert "task.eval_dir" in vocab and "211" in vocab and "model.vocab_size is 300" in vocab


def test_without_data_the_data_problems_are_not_checked(cli, tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["task"].update(train_dir=str(tmp_path / "nowhere"), eval_dir=None)
    copy = write_yaml(tmp_path / "tiny.yaml", config)
    assert problems_of(cli("validate", "--config", copy, ok=False)) == [
        f"task.train_dir {tmp_path / 'nowhere'}: no such folder"
    ]
    cli("validate", "--config", copy, "--no-data")


def test_a_prepare_config_names_its_missing_inputs(cli, tmp_path):
    config = yaml.safe_load((REPO / "configs" / "mlm" / "prepare-mlm-msl128-static.yaml").read_text())
    config.update(metadata_files=[str(tmp_path / "meta.txt")], vocab_file=str(tmp_path / "vocab.txt"))
    copy = write_yaml(tmp_path / "prepare-mlm-copy.yaml", config)
    problems = problems_of(cli("validate", "--config", copy, ok=False))
    assert [p.split(": ")[1] for p in problems] == [
        f"metadata_files {tmp_path / 'meta.txt'}",
        f"vocab_file {tmp_path / 'vocab.txt'}",
    ]


@pytest.mark.slow  # the largest-batch search traces many batches (about 50 s here)
def test_a_batch_beyond_memory_is_a_problem_with_the_largest_that_fits(cli, tmp_path):
    result, report = run_validate(
        cli, tmp_path, "--config", TINY, "--no-data", "--batch-size", 10**8, ok=False
    )
    assert result.exit_code == 2
    fits = report["max_batch"]
    assert 0 < fits < 10**8
    (problem,) = report["problems"]
    assert "train.batch_size 100000000" in problem and f"largest batch estimated to fit is {fits}" in problem
    # the estimate is linear in the batch: the largest batch's step fits in what was available
    per_example = (report["step"]["bytes"]["peak"]) / 10**8
    assert fits * per_example <= report["memory_available"] * 1.01


@pytest.mark.parametrize("flag", ["--device", "--backend"])  # --backend: its old name
def test_backend_cs_without_the_cerebras_software(cli, flag):
    result = cli("validate", "--config", TINY, "--no-data", flag, "cs", ok=False)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --device cs: not available here")
    assert "cerebras.pytorch" in line and "not importable" in line and "virtual environment" in line


def small_model(tmp_path: Path) -> Path:
    """The WikiText-2 runs' encoder (d_model 256, 4 layers) as a model-only config."""
    model = yaml.safe_load((REPO / "configs" / "mlm" / "wt2-softmax.yaml").read_text())["model"]
    return write_yaml(tmp_path / "small.yaml", {"model": model})


@pytest.mark.slow  # two bench workers (the matmul rate, the case); tests/unit/test_preflight.py is fast
@pytest.mark.parametrize(
    ("name", "n", "batch"),
    [("tiny", 257, 16), ("small", 128, 32)],
)
def test_memory_estimate_is_within_a_quarter_of_the_bench_peak(cli, tmp_path, name, n, batch):
    config = REPO / "configs" / "bench" / "tiny.yaml" if name == "tiny" else small_model(tmp_path)
    _, report = run_validate(
        cli, tmp_path, "--config", config, "--set", f"model.max_seq_length={n}", "--batch-size", batch
    )
    measured = tmp_path / "bench.json"
    cli("bench", "--level", "model", "--mode", "train", "--config", config, "--seq-len", n,
        "--batch-size", batch, "--attention", "linformer" if name == "tiny" else "softmax impl=sdpa",
        "--warmup", 2, "--repeats", 1, "--json", measured)  # fmt: skip
    (row,) = json.loads(measured.read_text())["rows"]
    # bench measures a step's peak above the weights and optimizer state resident before it
    estimate = report["step"]["bytes"]["peak_above_resident"]
    assert 0.75 < estimate / row["peak_bytes"] < 1.25, (estimate, row["peak_bytes"])
