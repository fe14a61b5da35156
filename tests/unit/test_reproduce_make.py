"""`make reproduce` as Make targets (pipelines/reproduce.mk), checked with `make -n` only: every stage is
listed with its command, FAST=1 runs the same stages smaller, and a stage whose record is newer than a
later stage's inputs reruns that later stage and nothing before it."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def make(runs: Path, data: Path, *args: str) -> str:
    """Return what `make -n ARGS reproduce` would run, with RUNS and LINCTL_DATA set."""
    command = [
        "make",
        "--no-print-directory",
        "-n",
        *args,
        "reproduce",
        f"RUNS={runs}",
        f"LINCTL_DATA={data}",
    ]
    found = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    return re.sub(r" *\\\n *", " ", found.stdout)  # one line per command


def commands(output: str, what: str) -> list[str]:
    return [line for line in output.splitlines() if what in line]


def records(runs: Path, data: Path) -> dict[Path, int]:
    """Return every stage's record (the targets under RUNS in make's database) with its depth: 0 for a
    stage that needs no other stage, else one more than the deepest stage it needs."""
    command = ["make", "-pnq", "reproduce", "FAST=1", f"RUNS={runs}", f"LINCTL_DATA={data}"]
    found = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    rules = re.findall(rf"^({re.escape(str(runs))}/[^\s%:]+):(.*)$", found.stdout, flags=re.MULTILINE)
    needs = {target: [p for p in prereqs.split() if p.startswith(f"{runs}/")] for target, prereqs in rules}

    def depth(target: str) -> int:
        return 1 + max((depth(p) for p in needs.get(target, [])), default=-1)

    return {Path(target): depth(target) for target in needs}


def test_fast_lists_every_stage_small_and_ends_with_the_report(tmp_path, data_dir):
    output = make(tmp_path, data_dir, "FAST=1")
    assert len(commands(output, "linctl prepare wikicorpus")) == 4
    trains = commands(output, "linctl train")
    # WikiText-2 MLM, SST-2 (2 starts × 3 seeds), LM, translation, ELECTRA, SST-2 of each ELECTRA (× 3 seeds)
    assert len(trains) == 3 + 6 + 2 + 2 + 2 + 6
    assert all("--set train.steps=" in line for line in trains)
    sst2 = [line for line in trains if "sst2" in line]
    assert sorted(re.search(r"train\.seed=(\d)", line).group(1) for line in sst2) == sorted("012" * 4)
    assert f"init_checkpoint={tmp_path}/wt2/linformer-k32-kv/checkpoint-00000020 " in sst2[0]
    funnel = [line for line in sst2 if "sst2-wt2-funnel.yaml" in line]
    assert len(funnel) == 3
    assert all(
        f"init_checkpoint={tmp_path}/wt2/electra-funnel/checkpoint-00000020 " in line for line in funnel
    )
    assert len(commands(output, "linctl eval")) == 3 + 6 + 4 + 2 + 2 + 6
    newstest = commands(output, "task.eval_dir=" + f"{tmp_path}/wmt14/test")
    assert len(newstest) == 2 and all("--set task.eval_sentences=20 " in line for line in newstest)
    assert len(commands(output, "linctl bench")) == 4
    assert '--max-batch --attention "softmax impl=sdpa" --memory-budget 1GiB --seq-len 64 ' in output
    last = output.strip().splitlines()[-1]
    assert "linctl report" in last and last.endswith(f"--output {tmp_path}/report.md")
    assert f"{tmp_path}/glue/sst2-random-seed2 " in last and f"{tmp_path}/bench/model.json" in last
    for run in (
        "wmt14/linformer",
        "wt2/electra-flat",
        "glue/sst2-funnel-seed2",
        "bench/funnel-max-batch.json",
    ):
        assert f"{tmp_path}/{run} " in last


def test_the_default_set_keeps_the_configs_steps_and_the_stages_options(tmp_path, data_dir):
    output = make(tmp_path, data_dir)
    assert "train.steps" not in output and "eval_tokens" not in output
    assert f"{tmp_path}/wt2/linformer-k32-kv/checkpoint-00000800" in output  # configs/mlm: 800 steps
    assert f"--model-dir {tmp_path}/glue/sst2-pretrained-seed1" in output
    evals = commands(output, "linctl eval --model-dir")
    assert sum("--set task.eval_examples=null" in line for line in evals) == 3 + 2  # MLM and ELECTRA
    assert sum("--set task.eval_sentences=null" in line for line in evals) == 2  # all of newstest2014
    assert f"init_checkpoint={tmp_path}/wt2/electra-flat/checkpoint-00000800 " in output
    assert "--seq-len 512,1024,2048,4096 --k 128,256 --paper" in output
    assert "--seq-len 128 --batch-size 16 --warmup 2 --repeats 5" in output


def test_a_newer_record_reruns_only_the_stages_after_it(tmp_path, data_dir):
    found = records(tmp_path, data_dir)
    assert len(found) == 63
    future = time.time() + 1000
    for path, depth in found.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (future + depth, future + depth))
    assert "linctl" not in make(tmp_path, data_dir, "FAST=1")  # every stage is done
    vocab = tmp_path / "wt2" / "vocab" / "manifest.json"
    os.utime(vocab, (future + 500, future + 500))
    output = make(tmp_path, data_dir, "FAST=1")
    assert len(commands(output, "linctl prepare mlm")) == 2  # the WikiText-2 shards, not the BERT recipes
    # the MLM runs, SST-2 fine-tuning (its shards use the vocabulary), ELECTRA and its SST-2 fine-tuning
    assert len(commands(output, "linctl train")) == 3 + 6 + 2 + 6
    assert len(commands(output, "linctl prepare glue")) == 1 and "linctl report" in output
    stages = ("prepare wikicorpus", "prepare vocab", "prepare wikitext", "configs/lm/", "linctl bench")
    for earlier in (*stages, "prepare wmt14", "configs/translation/"):
        assert earlier not in output
