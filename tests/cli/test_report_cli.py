"""`linctl report` over real tiny runs: the tables hold the runs' own numbers, seeds give numpy's mean and
standard deviation, published figures meet comparable runs only, plots are real PNGs, bad input is one
line."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from linctl.data.lm_stream import TokenStream

REPO = Path(__file__).resolve().parents[2]
SEEDS = (0, 1, 2)
STEPS = ["--set", "train.steps=4", "--set", "train.eval_every=0"]


@pytest.fixture(scope="module")
def runs(cli, tiny_args, tiny_lm, tmp_path_factory) -> dict[str, Path]:
    """Three seeds of the tiny MLM run, a tiny LM shaped as our Primal.+Trans. (four layers, the last
    Primal), each evaluated, and the smallest bench report."""
    root = tmp_path_factory.mktemp("report")
    found = {}
    for seed in SEEDS:
        model_dir = root / f"mlm-seed{seed}"
        cli("train", *tiny_args(model_dir), *STEPS, "--set", f"train.seed={seed}")
        cli("eval", "--model-dir", model_dir)
        found[f"mlm{seed}"] = model_dir
    lm = [
        "--config", REPO / "configs" / "lm" / "tiny.yaml", "--set", f"task.train_dir={tiny_lm / 'train'}",
        "--set", f"task.eval_dir={tiny_lm / 'valid'}",
        "--set", f"model.vocab_size={TokenStream(tiny_lm / 'train').vocab_size}", "--set", "model.n_layers=4",
        "--set", "model.layers={default: softmax, 3: {kind: primal, rank: 5}}", "--model-dir", root / "lm",
    ]  # fmt: skip
    cli("train", *lm, *STEPS)
    cli("eval", *lm, "--context-window", 4, "--json", root / "lm" / "eval-valid.json")
    found["lm"] = root / "lm"
    found["bench"] = root / "bench.json"
    cli("bench", "--level", "model", "--config", "configs/bench/tiny.yaml", "--seq-len", 7, "--repeats", 1,
        "--attention", "softmax impl=sdpa", "--json", found["bench"])  # fmt: skip
    return found


@pytest.fixture(scope="module")
def report(cli, runs, tmp_path_factory) -> tuple[Path, str]:
    output = tmp_path_factory.mktemp("out") / "report.md"
    result = cli("report", *runs.values(), "--output", output)
    assert "seed groups" in result.stdout
    return output, output.read_text(encoding="utf-8")


def rows(text: str, first: str) -> list[list[str]]:
    """Return the cells of the Markdown table rows of ``text`` whose first cell is ``first``."""
    found = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            found.append(cells)
    return found


def test_the_tables_hold_the_numbers_of_the_runs_json(runs, report):
    _, text = report
    header = next(line for line in text.splitlines() if line.startswith("| run | evaluation | step |"))
    names = [cell.strip() for cell in header.strip("|").split("|")][3:]
    for key in ("mlm0", "mlm1", "mlm2"):
        result = json.loads((runs[key] / "checkpoint-00000004" / "eval.json").read_text())
        (cells,) = rows(text, f"`{runs[key]}`")
        assert cells[1:3] == ["newest checkpoint", "4"]
        assert cells[3:] == [f"{result[name]:.4f}" for name in names]
    (lm,) = rows(text[: text.index("## Published figures")], f"`{runs['lm']}`")
    result = json.loads((runs["lm"] / "eval-valid.json").read_text())
    assert lm[1] == "eval-valid.json" and f"{result['ppl']:.4f}" in lm
    assert "--context-window 4" in text and f"scored on `{runs['lm'].parent}" not in text
    assert "seed 2, 4 steps of batch 3" in text


def test_seeds_show_numpys_mean_and_sample_std(runs, report):
    _, text = report
    assert text.count("(seeds ") == 1 and "(seeds 0, 1, 2)" in text  # the LM run has no other seed
    results = [json.loads((runs[f"mlm{s}"] / "checkpoint-00000004" / "eval.json").read_text()) for s in SEEDS]
    for metric in ("loss", "ppl", "accuracy"):
        values = np.array([result[metric] for result in results])
        (cells,) = [row for row in rows(text, "newest checkpoint") if row[1] == metric]
        assert cells[2:] == [f"{values.mean():.4f} ± {values.std(ddof=1):.4f}", "3"]


def test_a_published_figure_meets_the_comparable_run_only(runs, report):
    _, text = report
    section = text[text.index("## Published figures beside ours") :]
    (heading,) = [line for line in section.splitlines() if line.startswith("### ")]
    assert heading.startswith("### ppl 31: Primal.+Trans.")
    assert "pics/wikitext103.jpg" in section
    ppl = json.loads((runs["lm"] / "eval-valid.json").read_text())["ppl"]
    (row,) = [row for row in rows(section, f"`{runs['lm']}`")]
    assert row == [
        f"`{runs['lm']}`",
        "eval-valid.json",
        f"{ppl:.4f}",
        f"{ppl - 31.0:+.4f}",
        f"{(ppl - 31.0) / 31.0:+.1%}",
    ]
    assert "ppl 33" not in text  # the Transformer's figure: no run here has softmax in every layer


def test_plots_are_real_pngs_and_the_bench_rows_are_shown(runs, report):
    output, text = report
    bench = json.loads(runs["bench"].read_text())
    (row,) = rows(text, "softmax impl=sdpa")
    assert row[1:4] == ["7", "1", f"{bench['rows'][0]['median_s'] * 1e3:.4f}"]
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(linked) == 3  # curves of mlm and of lm, the bench plot
    for name in linked:
        pixels = image.imread(output.parent / name)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400 and np.ptp(pixels) > 0


def test_an_html_name_writes_the_report_as_a_page(cli, runs, tmp_path):
    cli("report", runs["mlm0"], runs["lm"], "--output", tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    ppl = json.loads((runs["lm"] / "eval-valid.json").read_text())["ppl"]
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<table>" in page
        and f"<td>{ppl:.4f}</td>" in page.replace(' style="text-align:right"', "")
    )
    assert '<img src="r-plots/curves-lm.png"' in page and (tmp_path / "r-plots" / "curves-lm.png").is_file()


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p.mkdir(), "not a run (no checkpoint-NNNNNNNN/ folder in it)"),
        (lambda p: p.write_text("{not json"), "not valid JSON (line 1: Expecting property name"),
        (lambda p: p.write_text('{"rows": 3}'), "not a `linctl bench --json` report"),
        (
            lambda p: p.write_text('{"schema": 1, "machine": {}, "options": {}, "notes": [], "rows": [{}]}'),
            "that this linctl cannot read (rows.0.",
        ),
        (lambda p: None, "no such file or folder"),
        (lambda p: p.write_text('{"step": 4, "task": "mlm"}'), "a `linctl eval` result, not a run"),
    ],
    ids=["empty-folder", "bad-json", "not-bench", "older-bench", "missing", "eval-result"],
)
def test_bad_input_is_one_line_exit_2(cli, runs, tmp_path, make, said):
    bad = tmp_path / "bad"
    make(bad)
    result = cli("report", runs["mlm0"], bad, "--output", tmp_path / "r.md", ok=False)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr
    assert result.stderr.startswith(f"error: {bad}:") and not (tmp_path / "r.md").exists()


def test_a_damaged_metrics_log_is_one_line_naming_it(cli, runs, tmp_path):
    damaged = tmp_path / "run"
    shutil.copytree(runs["mlm0"], damaged)
    with open(damaged / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"step": 5, "trai')  # a run killed while writing its log
    result = cli("report", damaged, "--output", tmp_path / "r.md", ok=False)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{damaged / 'metrics.jsonl'}: a line is not JSON" in result.stderr
