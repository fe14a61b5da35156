"""`linctl bench` through the CLI: outputs and their schema, comparisons, max-batch search, errors.

Every bench measures the matmul rate and then each case in a worker process of its own (seconds each on
two cores): one bench of the fewest cases runs by default, the others are `slow`; tests/unit/test_bench_run.py
checks what a run makes of the measurements without workers.
"""

import csv
import json
import statistics

import pytest

from linctl.bench.case import Case
from linctl.bench.measure import run_isolated
from linctl.bench.run import Row

TINY = "configs/bench/tiny.yaml"
TINY_LINFORMER = "linformer k=8 sharing=headwise"  # the tiny model's own attention


def test_smallest_bench_writes_one_row_schema_to_json_csv_and_plot(cli, tmp_path):
    # Two workers: the matmul rate and softmax; the Linformer's k (8) is above n (7), so it is not run.
    result = cli("bench", "--level", "model", "--config", TINY, "--seq-len", 7, "--repeats", 1,
                 "--attention", "softmax impl=sdpa,linformer", "--json", tmp_path / "b.json",
                 "--csv", tmp_path / "b.csv", "--plot", tmp_path / "b.png")  # fmt: skip
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["schema"] == 1 and report["machine"]["matmul_flops_per_s"] > 0
    rows = report["rows"]
    assert [(r["label"], r["n"], r["status"]) for r in rows] == [
        ("softmax impl=sdpa", 7, "ok"), (TINY_LINFORMER, 7, "skipped")
    ]  # fmt: skip
    assert all(set(r) == set(Row.model_fields) for r in rows)
    base, lin = rows
    assert base["tokens"] == 7 and base["flops"] > 0 and base["peak_bytes"] > 0
    assert base["speedup"] == base["flop_ratio"] == base["memory_saving"] == 1.0
    assert len(base["rounds_s"]) == 5 and base["median_s"] == statistics.median(
        base["rounds_s"]
    )  # kept worker
    assert "k (8)" in lin["message"] and lin["median_s"] is None
    with open(tmp_path / "b.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(Row.model_fields)
    assert [r["label"] for r in table] == [r["label"] for r in rows]
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "skipped" in result.output


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    from typer.testing import CliRunner

    from linctl.cli.app import app

    out = tmp_path_factory.mktemp("bench")
    args = ["bench", "--level", "model", "--config", TINY, "--seq-len", "7,33", "--repeats", "2"]
    args += ["--json", str(out / "b.json"), "--csv", str(out / "b.csv"), "--plot", str(out / "b.png")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.mark.slow
def test_json_csv_and_plot_share_one_row_schema(tiny_report):
    out, _ = tiny_report
    report = json.loads((out / "b.json").read_text())
    assert report["schema"] == 1 and report["schema_version"] == 1  # schema: the key of old readers
    assert {"device", "threads", "torch", "dtype", "matmul_flops_per_s"} <= report["machine"].keys()
    assert report["machine"]["matmul_flops_per_s"] > 0
    rows = report["rows"]
    assert [r["label"] for r in rows[:3]] == ["softmax impl=sdpa", "softmax impl=eager", TINY_LINFORMER]
    assert all(set(r) == set(Row.model_fields) for r in rows)
    with open(out / "b.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(Row.model_fields) and len(table) == len(rows)
    assert (out / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rows_compare_with_softmax_of_the_same_length(tiny_report):
    out, text = tiny_report
    rows = {(r["label"], r["n"]): r for r in json.loads((out / "b.json").read_text())["rows"]}
    base = rows["softmax impl=sdpa", 33]
    assert base["status"] == "ok" and base["speedup"] == base["flop_ratio"] == base["memory_saving"] == 1.0
    lin = rows["linformer k=8 sharing=headwise", 33]
    assert lin["status"] == "ok" and lin["tokens"] == 33 and lin["flops"] < base["flops"]
    assert lin["flop_ratio"] == pytest.approx(base["flops"] / lin["flops"])
    # kept workers timed in rounds: the speed-up is the median of the rounds' ratios
    per_round = [b / r for b, r in zip(base["rounds_s"], lin["rounds_s"], strict=True)]
    assert len(per_round) == 5 and lin["speedup"] == pytest.approx(statistics.median(per_round))
    assert lin["matmul_fraction"] > 0 and lin["tokens_per_s"] == pytest.approx(33 / lin["median_s"])
    short = rows["linformer k=8 sharing=headwise", 7]  # k > n: not run, and said why
    assert short["status"] == "skipped" and "k (8)" in short["message"]
    assert "speed-up" in text and "skipped" in text


@pytest.mark.slow  # a dozen workers, one per probe of the search
def test_max_batch_fits_the_budget_and_twice_as_many_do_not(cli, tmp_path):
    # Resident-set peaks vary by a page or two between runs, so the check one above the boundary is
    # left to the search's unit tests; well above it must not fit.
    budget = 8 << 20  # large enough that a page or two of noise is not a batch
    cli("bench", "--preset", "small", "--attention", "softmax impl=sdpa", "--seq-len", "65", "--max-batch",
        "--memory-budget", "8MiB", "--repeats", "1", "--json", tmp_path / "b.json")  # fmt: skip
    (row,) = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert row["status"] == "ok" and row["batch"] >= 1 and row["peak_bytes"] <= budget
    case = Case(
        what="attention", model={"d_model": 256, "n_heads": 4}, n=65, batch=2 * row["batch"] + 2,
        attention={"kind": "softmax", "impl": "sdpa", "dropout": 0.0, "causal": False, "bias": True},
        budget=budget, repeats=0,
    )  # fmt: skip
    assert run_isolated(case, 120).status == "oom"


@pytest.mark.slow
def test_paper_figures_sit_beside_ours(cli, tmp_path):
    result = cli("bench", "--preset", "small", "--seq-len", "512", "--k", "128", "--repeats", "1", "--paper",
                 "--json", tmp_path / "b.json")  # fmt: skip
    rows = {r["label"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    lin = rows["linformer k=128 sharing=layerwise"]
    assert lin["paper_speedup"] == 1.5 and lin["paper_memory_saving"] == 1.7
    per_round = [e / r for e, r in zip(rows["softmax impl=eager"]["rounds_s"], lin["rounds_s"], strict=True)]
    assert lin["speedup_eager"] == pytest.approx(statistics.median(per_round))
    assert "paper speed-up" in result.output


@pytest.mark.slow
def test_peers_run_the_same_configuration(cli, tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("linformer")
    cli("bench", "--level", "model", "--config", TINY, "--seq-len", "33", "--peers", "--repeats", "1",
        "--attention", "softmax impl=sdpa,linformer", "--json", tmp_path / "b.json")  # fmt: skip
    rows = {r["label"]: r for r in json.loads((tmp_path / "b.json").read_text())["rows"]}
    assert rows["transformers BertModel sdpa"]["status"] == "ok"
    assert rows["linformer-pkg k=8 sharing=headwise"]["against"] == "linformer k=8 sharing=headwise"
    assert rows["softmax impl=sdpa"]["vs_peer"] > 0 and rows["linformer k=8 sharing=headwise"]["vs_peer"] > 0


def test_set_changes_a_key_of_the_model_config(cli, tmp_path):
    cli("bench", "--level", "model", "--config", TINY, "--set", "model.attention.k=5",
        "--attention", "linformer", "--seq-len", "17", "--warmup", "0", "--repeats", "1",
        "--json", tmp_path / "b.json")  # fmt: skip
    report = json.loads((tmp_path / "b.json").read_text())
    assert [r["label"] for r in report["rows"]] == ["linformer k=5 sharing=headwise"]
    assert report["options"]["overrides"] == ["model.attention.k=5"]


@pytest.mark.slow
def test_peers_need_the_model_level(cli):
    result = cli("bench", "--preset", "small", "--seq-len", "33", "--attention", "softmax impl=sdpa",
                 "--peers", "--repeats", "1")  # fmt: skip
    assert "--level model" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seq-len", "0"], "--seq-len"),
        (["--seq-len", "5,x"], "--seq-len"),
        (["--level", "layer"], "--level"),
        (["--precision", "fp16"], "--precision"),
        (["--dtype", "fp16"], "--precision"),  # its old name
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--max-batch", "--batch-size", "4"], "not both"),
        (["--max-batch", "--rounds", "3"], "drop --rounds"),
        (["--rounds", "0"], "--rounds"),
        (["--memory-budget", "1GiB"], "add --max-batch"),
        (["--memory-budget", "lots", "--max-batch"], "--memory-budget"),
        (["--config", "missing.yaml"], "missing.yaml"),
        (["--sharing", "everything"], "sharing"),
        (["--set", "model.attention.k=5"], "add --config"),
        (["--config", TINY, "--set", "model.n_heads=5"], "n_heads"),
    ],
)
def test_bad_options_are_one_line_errors(cli, args, expected):
    result = cli("bench", *args, ok=False)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output


@pytest.mark.slow  # a worker per probe of the search
def test_funnel_max_batch_table(cli, tmp_path):
    funnel = "configs/glue/tiny-funnel.yaml"  # the funnel-b* presets' kind, tiny
    cli("bench", "--level", "model", "--config", funnel, "--attention", "softmax impl=sdpa",
        "--set", "model.vocab_size=211", "--mode", "train", "--seq-len", "32,64", "--max-batch",
        "--memory-budget", "16MiB", "--repeats", "1",
        "--json", tmp_path / "b.json")  # fmt: skip
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [(row["n"], row["status"]) for row in rows] == [(32, "ok"), (64, "ok")]
    assert rows[0]["batch"] >= rows[1]["batch"] >= 1 and all(r["peak_bytes"] <= 16 << 20 for r in rows)
