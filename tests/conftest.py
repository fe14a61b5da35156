"""Shared fixtures: seeded, two threads, no network, real data from LINCTL_DATA (default ../shared/data), else
the excerpts of it in tests/data."""

import json
import os
import random
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from linctl.cli.app import app
from linctl.data.datasets import data_root

REPO = Path(__file__).resolve().parents[1]
FULL_DATA = data_root(REPO).resolve()  # LINCTL_DATA, else ../shared/data beside the repository
EXCERPTS = REPO / "tests" / "data"  # a few hundred rows of each file, same layout (tests/data/README.md)
# The one rule: the full data folder when it holds anything (LINCTL_DATA naming a missing or empty folder
# counts as absent), else the excerpts; tests marked `full_data` skip unless their files are in FULL_DATA.
DATA = FULL_DATA if FULL_DATA.is_dir() and any(FULL_DATA.iterdir()) else EXCERPTS

os.environ["LINCTL_PROGRESS"] = "0"
torch.set_num_threads(2)
# The linctl processes that tests stop with Ctrl-C must get it as a terminal's foreground job does. A shell
# that starts the suite in the background without job control (`make test-all &` in a script, nohup …
# &) makes it ignore SIGINT, and an ignored signal stays ignored through exec into every process the
# tests start, which would then run on through their Ctrl-C. With a handler here they start with the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header() -> str:
    if DATA == FULL_DATA:
        return f"data: {DATA}"
    return f"data: {DATA} (excerpts; nothing at {FULL_DATA}: tests marked full_data skip)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``full_data(PATH, …)`` unless each PATH is whole under the full data folder."""
    marker = item.get_closest_marker("full_data")
    if marker is None:
        return
    missing = [str(path) for path in marker.args if DATA == EXCERPTS or not (FULL_DATA / path).exists()]
    if missing:
        pytest.skip(
            f"needs the whole of {', '.join(missing)}, not found under {FULL_DATA} (tests/data holds "
            "excerpts only): put the shared data folder beside the repository as ../shared/data, or set "
            "LINCTL_DATA to it"
        )


@pytest.fixture(autouse=True)
def _seeded_and_offline(monkeypatch):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)

    def refuse(*args, **kwargs):
        raise OSError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets: the full data folder (../shared/data/README.md) when there, else tests/data."""
    return DATA


class Cli:
    """Runs `linctl ARGS…` in-process and returns click's Result (exit_code, stdout, stderr)."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: object, ok: bool = True):
        result = self.runner.invoke(app, [str(a) for a in args])
        if ok and result.exit_code != 0:
            raise AssertionError(
                f"linctl {' '.join(map(str, args))} exited {result.exit_code}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{result.exception!r}"
            )
        return result


@pytest.fixture(scope="session")
def cli() -> Cli:
    return Cli()


TINY_VOCAB = 211  # configs/mlm/tiny.yaml's model.vocab_size


@pytest.fixture(scope="session")
def tiny_mlm_shards(tmp_path_factory, data_dir, cli) -> Callable[..., Path]:
    """``tiny_mlm_shards(out, vocab, lines, *extra)``: `linctl prepare mlm` shards of max_seq_length 16 (at
    most 3 predictions per example) from the WikiText-2 valid lines ``lines`` (a slice), into ``out``."""
    text = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines()

    def prepare(out: Path, vocab: Path, lines: slice, *extra: object) -> Path:
        source = tmp_path_factory.mktemp("text")
        (source / "part").write_text("\n".join(line.strip() for line in text[lines]) + "\n", encoding="utf-8")
        (source / "meta.txt").write_text(f"{source / 'part'}\n", encoding="utf-8")
        cli("prepare", "mlm", "--metadata-files", source / "meta.txt", "--output-dir", out,
            "--vocab-file", vocab, "--do-lower-case", "--max-seq-length", 16, "--max-predictions-per-seq", 3,
            "--multiple-docs-in-single-file", "--single-sentence-per-line", "--num-output-files", 2,
            "--dupe-factor", 1, *extra)  # fmt: skip
        return out

    return prepare


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory, data_dir, cli, tiny_mlm_shards) -> dict[str, Path]:
    """MLM shards of max_seq_length 16 from real WikiText-2 text, with a 211-piece WordPiece vocabulary:
    ``train`` unmasked (dynamic masking), ``eval`` with static masks."""
    root = tmp_path_factory.mktemp("tiny")
    lines = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines()
    (root / "part-0").write_text("\n".join(line.strip() for line in lines[:400]) + "\n", encoding="utf-8")
    (root / "meta-0.txt").write_text(f"{root / 'part-0'}\n", encoding="utf-8")
    cli("prepare", "vocab", "--metadata-files", root / "meta-0.txt", "--output-dir", root / "vocab",
        "--vocab-size", TINY_VOCAB, "--do-lower-case", "--min-frequency", 1)  # fmt: skip
    vocab = root / "vocab" / "vocab.txt"
    tiny_mlm_shards(root / "train", vocab, slice(0, 400), "--disable-masking")
    tiny_mlm_shards(root / "eval", vocab, slice(400, 500))
    return {"train": root / "train", "eval": root / "eval", "vocab": vocab}


@pytest.fixture(scope="session")
def tiny_args(tiny_shards) -> Callable[[Path], list[object]]:
    """``tiny_args(model_dir)``: ``linctl train`` arguments for configs/mlm/tiny.yaml on the tiny shards,
    into ``model_dir`` (for fixtures wider than one test; tests take ``tiny_run``)."""

    def args(model_dir: Path) -> list[object]:
        return [
            "--config", REPO / "configs" / "mlm" / "tiny.yaml",
            "--set", f"task.train_dir={tiny_shards['train']}",
            "--set", f"task.eval_dir={tiny_shards['eval']}",
            "--model-dir", model_dir,
        ]  # fmt: skip

    return args


@pytest.fixture
def tiny_run(tiny_args, tmp_path) -> list[object]:
    """``linctl train`` arguments for configs/mlm/tiny.yaml on the tiny shards, into a fresh model folder."""
    return tiny_args(tmp_path / "model")


@pytest.fixture(scope="session")
def curve() -> Callable[[Path], dict[tuple[int, str], float]]:
    """``curve(model_dir)``: every loss and gradient norm a training run logged, by step and name."""

    def logged(model_dir: Path) -> dict[tuple[int, str], float]:
        records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
        return {
            (r["step"], key): value
            for r in records
            for key, value in r.items()
            if key in ("train_loss", "eval_loss", "grad_norm")
        }

    return logged


@pytest.fixture(scope="session")
def largest_difference(curve) -> Callable[[Path, Path], float]:
    """``largest_difference(ours, theirs)``: how far apart two runs' curves are, at most (same steps)."""

    def largest(ours: Path, theirs: Path) -> float:
        a, b = curve(ours), curve(theirs)
        assert a.keys() == b.keys()
        return max(abs(a[key] - b[key]) for key in a)

    return largest


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory, data_dir, cli) -> Path:
    """`prepare wikitext` of 300 WikiText-2 valid lines as train and the next 100 as valid: the
    ``train`` and ``valid`` split folders and ``vocab.txt``."""
    root = tmp_path_factory.mktemp("lm")
    lines = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (root / "text").mkdir()
    (root / "text" / "train.txt").write_text("".join(lines[:300]), encoding="utf-8")
    (root / "text" / "valid.txt").write_text("".join(lines[300:400]), encoding="utf-8")
    cli("prepare", "wikitext", "--input", root / "text", "--output-dir", root / "lm")
    return root / "lm"
