"""`linctl prepare mlm` on real text (WikiText-2) with the real BERT vocabularies."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from linctl.data.loader import MlmCollator
from linctl.data.ragged import Ragged
from linctl.data.shards import ShardSet
from linctl.data.tokenizer import load_vocab


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, data_dir) -> Path:
    """A metadata file listing WikiText-2 valid and test: paragraphs as documents, blank-line separated."""
    folder = tmp_path_factory.mktemp("corpus")
    meta = folder / "metadata.txt"
    meta.write_text(f"{data_dir / 'wikitext-2' / 'valid.txt'}\n{data_dir / 'wikitext-2' / 'test.txt'}\n")
    return meta


@pytest.fixture(scope="module")
def cased_vocab(data_dir) -> Path:
    return data_dir / "bert-vocab" / "bert-base-cased-vocab.txt"


def prepare(cli, corpus, vocab, out, *extra, ok=True):
    args = ["prepare", "mlm", "--metadata-files", corpus, "--vocab-file", vocab, "--output-dir", out]
    args += ["--multiple-docs-in-single-file", "--single-sentence-per-line", "--num-output-files", 3]
    return cli(*args, *extra, ok=ok)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.arrow"))}


RECIPES = {
    "static128": ["--max-seq-length", 128, "--seed", 3],
    "static512": ["--max-seq-length", 512, "--max-predictions-per-seq", 80, "--seed", 3],
    "dynamic512": ["--max-seq-length", 512, "--max-predictions-per-seq", 80, "--disable-masking"],
}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, cli, corpus, cased_vocab):
    """Return the shards of a named recipe, built once per module."""
    built: dict[str, ShardSet] = {}

    def shards(name: str) -> ShardSet:
        if name not in built:
            out = tmp_path_factory.mktemp(name)
            prepare(cli, corpus, cased_vocab, out, "--dupe-factor", 1, *RECIPES[name])
            built[name] = ShardSet(out)
        return built[name]

    return shards


def all_examples(shards: ShardSet) -> dict[str, Ragged]:
    return shards.take(np.arange(len(shards)))


def check_framing(shards: ShardSet, max_seq_length: int) -> None:
    vocab = load_vocab(Path(shards.manifest["options"]["vocab_file"]), False)
    rows = all_examples(shards)["input_ids"]
    assert len(rows) > 0
    assert (rows.values[rows.offsets[:-1]] == vocab.cls_id).all()
    assert (rows.values[rows.offsets[1:] - 1] == vocab.sep_id).all()
    assert rows.lengths.max() <= max_seq_length
    assert rows.lengths.min() >= 3


@pytest.mark.parametrize("name,msl", [("static128", 128), ("static512", 512), ("dynamic512", 512)])
def test_examples_are_framed_and_fit(recipe, name, msl):
    check_framing(recipe(name), msl)


def masking_stats(examples: dict[str, Ragged], mask_id: int) -> tuple[float, float, float, float]:
    inputs, positions, labels = (
        examples["input_ids"],
        examples["masked_lm_positions"],
        examples["masked_lm_ids"],
    )
    at = inputs.offsets[positions.row_ids] + positions.values
    seen = inputs.values[at]
    masked_share = np.mean(seen == mask_id)
    kept_share = np.mean(seen == labels.values)
    random_share = 1 - masked_share - kept_share
    return len(positions.values) / len(inputs.values), masked_share, kept_share, random_share


@pytest.mark.parametrize("name", ["static128", "static512"])
def test_static_masking_rates(recipe, name):
    shards = recipe(name)
    examples = all_examples(shards)
    assert len(examples["input_ids"].values) >= 10_000
    vocab = load_vocab(Path(shards.manifest["options"]["vocab_file"]), False)
    fraction, masked, kept, random = masking_stats(examples, vocab.mask_id)
    assert abs(fraction - 0.15) <= 0.01
    assert abs(masked - 0.8) <= 0.02
    assert abs(kept - 0.1) <= 0.02
    assert abs(random - 0.1) <= 0.02


@pytest.mark.parametrize("name,limit", [("static128", 20), ("static512", 80)])
def test_positions_sorted_unique_bounded(recipe, name, limit):
    examples = all_examples(recipe(name))
    lengths = examples["input_ids"].lengths
    for row, positions in enumerate(examples["masked_lm_positions"].rows()):
        assert 1 <= len(positions) <= limit
        assert (np.diff(positions) > 0).all()
        assert positions.min() >= 1 and positions.max() <= lengths[row] - 2  # never [CLS] or [SEP]


def test_manifest_records_options_counts_and_checksums(recipe):
    static128 = recipe("static128")
    manifest = static128.manifest
    assert manifest["kind"] == "mlm" and manifest["schema_version"] == 1
    assert manifest["options"]["max_seq_length"] == 128
    assert sum(manifest["counts"]["shards"].values()) == len(static128) == manifest["counts"]["examples"]
    assert sorted(manifest["files"]) == [f"examples-0000{i}-of-00003.arrow" for i in range(3)]
    assert all(len(digest) == 64 for digest in manifest["files"].values())


def test_dynamic_collator_masks_per_step(recipe):
    dynamic512 = recipe("dynamic512")
    assert dynamic512.features == ["input_ids"]
    collate = MlmCollator.for_shards(dynamic512.manifest, seed=5)
    batch = dynamic512.take(np.arange(0, 300, 7))
    first, again, other = collate(batch, step=1), collate(batch, step=1), collate(batch, step=2)
    for key in first:
        assert (first[key] == again[key]).all()
    assert not (first["masked_lm_positions"] == other["masked_lm_positions"]).all()
    B = first["input_ids"].shape[0]
    assert first["attention_mask"].sum().item() == len(batch["input_ids"].values)
    assert first["masked_lm_positions"].shape == (B, 80)
    weights = first["masked_lm_weights"]
    fraction = weights.sum().item() / first["attention_mask"].sum().item()
    assert abs(fraction - 0.15) <= 0.01
    # Every weighted position points at a real token; padding positions carry weight 0.
    rows = np.arange(B)[:, None].repeat(80, 1)
    real = first["attention_mask"].numpy()[rows, first["masked_lm_positions"].numpy()]
    assert (real[weights.numpy() > 0]).all()


def test_whole_word_masking_never_splits_a_word(tmp_path, cli, corpus, cased_vocab):
    prepare(cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1, "--mask-whole-word")
    shards = ShardSet(tmp_path)
    vocab = load_vocab(cased_vocab, False)
    examples = all_examples(shards)
    originals = examples["input_ids"].values.copy()
    inputs = examples["input_ids"]
    at = inputs.offsets[examples["masked_lm_positions"].row_ids] + examples["masked_lm_positions"].values
    originals[at] = examples["masked_lm_ids"].values
    chosen = np.zeros(len(originals), dtype=bool)
    chosen[at] = True
    continuation = vocab.continuation[originals]
    # A piece right after [CLS] (a window may start mid-word) has no word to belong to.
    after_frame = np.isin(np.roll(originals, 1), [vocab.cls_id, vocab.sep_id])
    continuation &= ~after_frame
    split_words = np.flatnonzero(continuation & (chosen != np.roll(chosen, 1)))
    assert continuation.sum() > 1000  # the text has many multi-piece words
    assert len(split_words) == 0
    fraction = chosen.sum() / len(originals)
    assert 0.13 <= fraction <= 0.151


def unmasked_texts(examples: dict[str, Ragged]) -> list[bytes]:
    """Each example's original tokens (masked positions restored), as bytes."""
    inputs, positions = examples["input_ids"], examples["masked_lm_positions"]
    originals = inputs.values.copy()
    originals[inputs.offsets[positions.row_ids] + positions.values] = examples["masked_lm_ids"].values
    return [row.tobytes() for row in Ragged(originals, inputs.offsets).rows()]


def test_dupe_factor_multiplies_examples_with_new_masks(tmp_path, cli, corpus, cased_vocab):
    once, twice = tmp_path / "once", tmp_path / "twice"
    prepare(cli, corpus, cased_vocab, once, "--dupe-factor", 1, "--short-seq-prob", 0)
    prepare(cli, corpus, cased_vocab, twice, "--dupe-factor", 2, "--short-seq-prob", 0)
    one, two = all_examples(ShardSet(once)), all_examples(ShardSet(twice))
    texts_one, texts_two = Counter(unmasked_texts(one)), Counter(unmasked_texts(two))
    assert texts_two == Counter({text: 2 * n for text, n in texts_one.items()})  # each window twice…
    masks: dict[bytes, set[bytes]] = {}
    for text, mask in zip(unmasked_texts(two), two["masked_lm_positions"].rows(), strict=True):
        masks.setdefault(text, set()).add(mask.tobytes())
    pairs = [text for text, n in texts_one.items() if n == 1 and len(text) > 40]
    assert sum(len(masks[text]) == 2 for text in pairs) >= 0.95 * len(pairs)  # …with other masks


def test_same_seed_same_bytes_other_seed_other_masks(tmp_path, cli, corpus, cased_vocab):
    runs = {}
    for name, seed, workers in [("a", 7, 1), ("b", 7, 2), ("c", 8, 2)]:
        prepare(
            cli,
            corpus,
            cased_vocab,
            tmp_path / name,
            "--dupe-factor",
            1,
            "--seed",
            seed,
            "--workers",
            workers,
        )
        runs[name] = shard_bytes(tmp_path / name)
    assert len(runs["a"]) == 3 and runs["a"] == runs["b"]
    assert runs["a"].keys() == runs["c"].keys()
    assert all(runs["a"][k] != runs["c"][k] for k in runs["a"])


def test_rerun_is_a_noop_and_other_options_are_refused(tmp_path, cli, corpus, cased_vocab):
    prepare(cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = prepare(cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1, "--workers", 1)
    assert "already complete" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    refused = prepare(
        cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1, "--max-seq-length", 64, ok=False
    )
    assert refused.exit_code == 2
    assert "max_seq_length=128" in refused.stderr and "max_seq_length=64" in refused.stderr


def test_second_run_is_refused_while_one_writes_and_a_killed_run_resumes(tmp_path, cli, corpus, cased_vocab):
    args = [
        sys.executable,
        "-m",
        "linctl",
        "prepare",
        "mlm",
        "--metadata-files",
        str(corpus),
        "--vocab-file",
        str(cased_vocab),
        "--multiple-docs-in-single-file",
        "--single-sentence-per-line",
        "--num-output-files",
        "4",
        "--dupe-factor",
        "3",
        "--workers",
        "1",
    ]
    env = {**os.environ, "LINCTL_PROGRESS": "0"}
    subprocess.run([*args, "--output-dir", str(tmp_path / "whole")], check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--output-dir", str(killed)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(killed.glob(".work/*.json")) and time.monotonic() < deadline:
        time.sleep(0.01)
    second = cli(*args[3:], "--output-dir", killed, ok=False)  # the same run, from another process
    assert second.exit_code == 2
    assert f"{killed}: is being written by process {proc.pid} (started " in second.stderr
    assert second.stderr.rstrip().endswith("; wait for it or stop it")
    assert proc.poll() is None  # the first run goes on, its files untouched
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "manifest.json").exists()
    for leftover in killed.rglob("*"):
        if leftover.is_file() and ".tmp-" not in leftover.name and leftover.suffix == ".arrow":
            assert leftover.stat().st_size > 0  # complete files only under final names
    subprocess.run([*args, "--output-dir", str(killed)], check=True, env=env, capture_output=True)
    assert shard_bytes(killed) == shard_bytes(tmp_path / "whole")
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    assert json.loads((killed / "manifest.json").read_text())["files"] == whole["files"]
    assert not (killed / ".work").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--max-seq-length", 7], "--max-seq-length = 7"),
        (["--masked-lm-prob", 0], "--masked-lm-prob = 0.0"),
        (["--masked-lm-prob", 1], "--masked-lm-prob = 1.0"),
        (["--max-seq-length", 16, "--overlap-size", 13], "overlap_size (13)"),
    ],
)
def test_bad_options_exit_2_without_output(tmp_path, cli, corpus, cased_vocab, extra, message):
    out = tmp_path / "out"
    result = prepare_bad(cli, corpus, cased_vocab, out, *extra)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("missing", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
def test_vocab_without_special_token_is_refused(tmp_path, cli, corpus, cased_vocab, missing):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(t for t in cased_vocab.read_text().splitlines() if t != missing) + "\n")
    result = prepare_bad(cli, corpus, vocab, tmp_path / "out")
    assert result.exit_code == 2 and f"lacks {missing}" in result.stderr
    assert not (tmp_path / "out").exists()


def prepare_bad(cli, corpus, vocab, out, *extra):
    """Run prepare mlm with only the required options and ``extra``, expecting it to fail."""
    args = ["prepare", "mlm", "--metadata-files", corpus, "--vocab-file", vocab, "--output-dir", out]
    return cli(*args, *extra, ok=False)


def test_missing_and_empty_inputs_are_refused(tmp_path, cli, cased_vocab):
    meta = tmp_path / "meta.txt"
    meta.write_text(f"{tmp_path / 'nowhere.txt'}\n")
    result = prepare_bad(cli, meta, cased_vocab, tmp_path / "out")
    assert (
        result.exit_code == 2 and "meta.txt:1: input file" in result.stderr and "not found" in result.stderr
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    meta.write_text(f"{empty}\n")
    result = prepare_bad(cli, meta, cased_vocab, tmp_path / "out")
    assert result.exit_code == 2 and "hold no text" in result.stderr
    assert not list((tmp_path / "out").glob("*.arrow"))
    result = prepare_bad(cli, tmp_path / "no-meta.txt", cased_vocab, tmp_path / "out2")
    assert result.exit_code == 2 and "no-meta.txt: file not found" in result.stderr


def test_failed_run_releases_its_folder_for_the_corrected_run(tmp_path, cli, data_dir, cased_vocab):
    good = tmp_path / "good.txt"
    text = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines()[:300]
    good.write_text("\n".join(text) + "\n", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a fine line\n\xff not UTF-8\n")
    (tmp_path / "bad-meta.txt").write_text(f"{good}\n{bad}\n")
    (tmp_path / "meta.txt").write_text(f"{good}\n")
    out = tmp_path / "out"
    failed = prepare(cli, tmp_path / "bad-meta.txt", cased_vocab, out, "--workers", 1, ok=False)
    assert failed.exit_code == 2 and f"{bad}:2: not valid UTF-8 (byte 0xff at column 1)" in failed.stderr
    assert not out.exists()  # it made the folder, so the claim, work files and folder all went
    out.mkdir()
    failed = prepare(cli, tmp_path / "bad-meta.txt", cased_vocab, out, "--workers", 1, ok=False)
    assert failed.exit_code == 2 and list(out.iterdir()) == []  # a folder it found stays, empty
    prepare(cli, tmp_path / "meta.txt", cased_vocab, out, "--workers", 1)
    assert ShardSet(out).manifest["options"]["metadata_files"] == [str(tmp_path / "meta.txt")]


def test_uncased_vocab_without_lower_casing_warns(tmp_path, cli, corpus, data_dir):
    result = prepare(
        cli, corpus, data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt", tmp_path, "--dupe-factor", 1
    )
    assert "uncased but --do-lower-case is off" in result.stderr


def test_lost_shard_is_rebuilt_identically(tmp_path, cli, corpus, cased_vocab):
    prepare(cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1)
    before = shard_bytes(tmp_path)
    lost = sorted(tmp_path.glob("*.arrow"))[1]
    lost.unlink()
    again = prepare(cli, corpus, cased_vocab, tmp_path, "--dupe-factor", 1)
    assert "already complete" not in again.stdout
    assert shard_bytes(tmp_path) == before
    ShardSet(tmp_path)  # manifest and checksums agree again


def start_pooled_run(
    tmp_path: Path, corpus: Path, vocab: Path, initialized: bool = True
) -> tuple[subprocess.Popen, list[int]]:
    """Start `prepare mlm --workers 2` in its own process group; return it and its children once both
    workers exist and, if ``initialized``, have run their initializer (they then ignore SIGINT, which
    /proc shows)."""
    args = [sys.executable, "-m", "linctl", "prepare", "mlm", "--metadata-files", str(corpus)]
    args += ["--vocab-file", str(vocab), "--output-dir", str(tmp_path / "out"), "--workers", "2"]
    args += ["--multiple-docs-in-single-file", "--single-sentence-per-line", "--dupe-factor", "40"]
    env = {**os.environ, "LINCTL_PROGRESS": "0"}
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        children = child_pids(proc.pid)
        workers = [pid for pid in children if b"spawn_main" in read_proc(pid, "cmdline")]
        if len(workers) == 2 and (not initialized or all(ignores_sigint(pid) for pid in workers)):
            return proc, children
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"no two initialized workers (exit code {proc.wait()})")


def child_pids(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").glob("*")
        for child in read_proc(task, "children").split()
    ]


def read_proc(pid: int | Path, name: str) -> bytes:
    try:
        return (pid if isinstance(pid, Path) else Path(f"/proc/{pid}")).joinpath(name).read_bytes()
    except OSError:
        return b""


def ignores_sigint(pid: int) -> bool:
    for line in read_proc(pid, "status").decode().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def alive(pid: int) -> bool:
    stat = read_proc(pid, "stat").decode()
    return bool(stat) and stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers die with their parent on Linux only"
)
def test_kill_9_of_a_pooled_run_leaves_no_worker_behind(tmp_path, corpus, cased_vocab):
    proc, children = start_pooled_run(tmp_path, corpus, cased_vocab)
    assert len(children) == 3  # two workers and multiprocessing's resource tracker
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if alive(pid)]  # the tracker too: it ends when the workers do


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("initialized", [False, True], ids=["workers-starting", "workers-running"])
def test_ctrl_c_of_a_pooled_run_prints_one_line_and_exits_130(tmp_path, corpus, cased_vocab, initialized):
    proc, _ = start_pooled_run(tmp_path, corpus, cased_vocab, initialized)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert stderr.count("interrupted") == 1 and stderr.startswith("interrupted: ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_from_outside_ends_the_run_in_one_line_and_the_rerun_completes(
    tmp_path, corpus, cased_vocab, cli
):
    proc, children = start_pooled_run(tmp_path, corpus, cased_vocab)
    worker = next(pid for pid in children if b"spawn_main" in read_proc(pid, "cmdline"))
    os.kill(worker, signal.SIGKILL)  # what the out-of-memory killer does
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert stderr.strip() == (
        "error: a worker process of this run died (killed from outside, or out of memory); "
        "finished output files are kept; run the same command again to resume"
    )
    cli("prepare", "mlm", "--metadata-files", corpus, "--vocab-file", cased_vocab, "--output-dir",
        tmp_path / "out", "--workers", 2, "--multiple-docs-in-single-file", "--single-sentence-per-line",
        "--dupe-factor", 40)  # fmt: skip  # the same command
    ShardSet(tmp_path / "out")
