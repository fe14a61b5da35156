"""`linctl prepare wikitext` on the real WikiText-2 and WikiText-103 files, and its reader TokenStream."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from linctl.data.lm_stream import TokenStream
from linctl.data.tokenizer import load_vocab
from linctl.data.word_vocab import build_word_vocab, read_word_vocab
from linctl.errors import InputError

REPO = Path(__file__).resolve().parents[2]
SPECIALS = ["<pad>", "<eos>", "<unk>"]


def prepare(cli, input, out, *extra, ok=True):
    return cli("prepare", "wikitext", "--input", input, "--output-dir", out, *extra, ok=ok)


def failure(cli, input, out, *extra) -> str:
    result = prepare(cli, input, out, *extra, ok=False)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def folder_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def wt2(data_dir) -> Path:
    return data_dir / "wikitext-2"


@pytest.fixture(scope="module")
def wt2_out(tmp_path_factory, cli, wt2) -> Path:
    """The whole of WikiText-2 (the real train.txt.gz: about two seconds), word-level."""
    out = tmp_path_factory.mktemp("wt2")
    prepare(cli, wt2, out)
    return out


@pytest.fixture
def small(tmp_path, wt2) -> Path:
    """A WikiText folder whose train split is a copy of WikiText-2 valid, and the real test split."""
    folder = tmp_path / "small"
    folder.mkdir()
    shutil.copyfile(wt2 / "valid.txt", folder / "wiki.train.tokens")
    shutil.copyfile(wt2 / "test.txt", folder / "wiki.test.tokens")
    return folder


@pytest.mark.full_data("wikitext-2/train.txt.gz", "wikitext-2/valid.txt", "wikitext-2/test.txt")
def test_wikitext2_counts(wt2_out):
    """The word-level sizes WikiText-2 LMs report (pytorch/examples, fairseq): 33,278 types with <eos>."""
    counts = {split: TokenStream(wt2_out / split).manifest["counts"] for split in ("train", "valid", "test")}
    assert {split: c["tokens"] for split, c in counts.items()} == {
        "train": 2_088_628,
        "valid": 217_646,
        "test": 245_569,
    }
    assert {split: c["lines"] for split, c in counts.items()} == {
        "train": 36_718,
        "valid": 3_760,
        "test": 4_358,
    }
    assert all(c["oov"] == 0 for c in counts.values())  # WikiText-2 valid/test words all occur in train
    assert [c["unk"] for c in counts.values()] == [54_625, 11_718, 15_218]  # WikiText's own <unk> marks
    vocab = read_word_vocab(wt2_out / "vocab.txt")
    assert len(vocab) == 33_279 == 33_278 + 1  # <pad> is the one special WikiText-2 lacks
    assert list(vocab.tokens[:4]) == [*SPECIALS, "the"]
    assert all(c["vocab_size"] == 33_279 for c in counts.values())


def test_every_line_blank_or_not_ends_with_eos(wt2_out, wt2):
    stream = TokenStream(wt2_out / "valid")
    lengths = np.array([len(line.split()) + 1 for line in lines_of(wt2 / "valid.txt")])
    assert stream.eos_id == 1 and stream.pad_id == 0
    assert (np.flatnonzero(stream.tokens == stream.eos_id) == np.cumsum(lengths) - 1).all()
    blank = np.flatnonzero(lengths == 1)
    headings = [i for i, line in enumerate(lines_of(wt2 / "valid.txt")) if line.startswith(" = ")]
    assert headings and all(lengths[i - 1] == lengths[i + 1] == 1 for i in headings)  # " " around each
    ends = np.cumsum(lengths) - 1
    assert (stream.tokens[ends[blank] - 1] == stream.eos_id).all()  # a blank line is <eos> alone


def test_ids_decode_to_the_files_words(wt2_out, wt2):
    vocab = read_word_vocab(wt2_out / "vocab.txt")
    for split, name in [("valid", "valid.txt"), ("test", "test.txt")]:
        words = [w for line in lines_of(wt2 / name) for w in [*line.split(), "<eos>"]]
        decoded = np.array(vocab.tokens)[TokenStream(wt2_out / split).tokens]
        # Words not in train are <unk> (none in the whole WikiText-2: test_wikitext2_counts).
        assert decoded.tolist() == [w if w in vocab.ids else "<unk>" for w in words]


def test_vocab_counts_and_order(wt2_out):
    vocab = read_word_vocab(wt2_out / "vocab.txt")
    train = TokenStream(wt2_out / "train").tokens
    assert np.bincount(train, minlength=len(vocab)).tolist() == list(vocab.counts)  # counts are real
    counts = np.array(vocab.counts[3:])
    _, first = np.unique(train, return_index=True)  # where each id first appears (every id appears but <pad>)
    words_first = first[2:]
    assert len(words_first) == len(counts)
    order = np.lexsort((words_first, -counts))  # by count, ties by first appearance
    assert (order == np.arange(len(counts))).all()


def test_ties_keep_first_appearance():
    vocab = build_word_vocab(["b a\n", " \n", "a b c <unk>\n", "c"])
    assert vocab.tokens == ("<pad>", "<eos>", "<unk>", "b", "a", "c")
    assert vocab.counts == (0, 4, 1, 2, 2, 2)
    assert vocab.text().splitlines()[:2] == ["<pad> 0", "<eos> 4"]


def test_two_runs_are_byte_identical(cli, tmp_path, small):
    prepare(cli, small, tmp_path / "a")
    prepare(cli, small, tmp_path / "b")
    a, b = folder_bytes(tmp_path / "a"), folder_bytes(tmp_path / "b")
    files = ["manifest.json", "tokens.arrow"]
    assert sorted(a) == [*(f"{split}/{f}" for split in ("test", "train") for f in files), "vocab.txt"]
    vocab_a = json.loads(a["test/manifest.json"])["options"].pop("vocab_file")
    vocab_b = json.loads(b["test/manifest.json"])["options"].pop("vocab_file")
    assert (vocab_a, vocab_b) == (str(tmp_path / "a" / "vocab.txt"), str(tmp_path / "b" / "vocab.txt"))
    assert {k: v for k, v in a.items() if "manifest" not in k} == {
        k: v for k, v in b.items() if "manifest" not in k
    }


def test_words_outside_the_vocabulary_become_unk(cli, tmp_path, small, wt2):
    out = tmp_path / "out"
    prepare(cli, small, out)
    vocab = read_word_vocab(out / "vocab.txt")
    test = TokenStream(out / "test")
    words = [w for line in lines_of(wt2 / "test.txt") for w in [*line.split(), "<eos>"]]
    known = np.array([w in vocab.ids for w in words])
    unk = test.tokens == vocab.unk_id
    assert (unk == (~known | (np.array(words) == "<unk>"))).all()
    counts = test.manifest["counts"]
    assert counts["oov"] == int((~known).sum()) > 0 and counts["unk"] == int(unk.sum())
    assert counts["unk_rate"] == round(counts["unk"] / counts["tokens"], 6)
    kept = np.array(vocab.tokens)[test.tokens[known]]
    assert kept.tolist() == np.array(words)[known].tolist()


def test_rerun_does_nothing_and_other_options_are_refused(cli, tmp_path, small, data_dir):
    out = tmp_path / "out"
    prepare(cli, small, out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = prepare(cli, small, out)
    assert again.stdout.count("(already complete)") == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    bert = data_dir / "bert-vocab" / "bert-base-cased-vocab.txt"
    message = failure(cli, small, out, "--tokenizer", "wordpiece", "--vocab-file", bert)
    assert f"--output-dir {out / 'train'}: holds output made with eos_id=1, this run asks eos_id=" in message
    # Another train text makes another vocabulary: refused before vocab.txt is touched.
    other = tmp_path / "other"
    other.mkdir()
    (other / "train.txt").write_text("a b\nb\n", encoding="utf-8")
    message = failure(cli, other, out)
    assert f"--output-dir {out}: holds a vocab.txt other than the one {other / 'train.txt'} gives" in message
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_lost_manifest_is_resumed(cli, tmp_path, small):
    out = tmp_path / "out"
    prepare(cli, small, out)
    whole = folder_bytes(out)
    test_mtime = (out / "test" / "tokens.arrow").stat().st_mtime_ns
    # What a kill while the train split was being written leaves: its claim, half-written files.
    train = out / "train"
    options = json.loads((train / "manifest.json").read_text())["options"]
    (train / "manifest.json").unlink()
    (train / "tokens.arrow").unlink()
    (train / ".linctl-pending.json").write_text(json.dumps({"kind": "lm", "options": options}))
    (train / "tokens.int32.tmp-999999").write_bytes(b"\0" * 12)
    (train / "tokens.arrow.tmp-999999").write_bytes(b"ARROW1")
    result = prepare(cli, small, out)
    assert result.stdout.count("(already complete)") == 1
    assert folder_bytes(out) == whole
    assert (out / "test" / "tokens.arrow").stat().st_mtime_ns == test_mtime


def test_killed_run_resumes_to_identical_output(tmp_path, wt2, wt2_out):
    args = [sys.executable, "-m", "linctl", "prepare", "wikitext", "--input", str(wt2)]
    env = {**os.environ, "LINCTL_PROGRESS": "0"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--output-dir", str(killed)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(killed.glob("train/tokens.int32.tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "train" / "manifest.json").exists()  # killed while writing the train split
    subprocess.run([*args, "--output-dir", str(killed)], check=True, env=env, capture_output=True)
    assert not [p for p in killed.rglob("*") if ".tmp-" in p.name or p.name.startswith(".linctl")]
    for split in ("train", "valid", "test"):
        assert (killed / split / "tokens.arrow").read_bytes() == (
            wt2_out / split / "tokens.arrow"
        ).read_bytes()
    assert (killed / "vocab.txt").read_bytes() == (wt2_out / "vocab.txt").read_bytes()


def test_wordpiece(cli, tmp_path, wt2, data_dir):
    bert = data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt"
    out = tmp_path / "out"
    prepare(
        cli,
        wt2,
        out,
        "--tokenizer",
        "wordpiece",
        "--vocab-file",
        bert,
        "--do-lower-case",
        "--splits",
        "valid",
    )
    assert sorted(p.name for p in out.iterdir()) == ["valid"]  # no word vocabulary
    stream = TokenStream(out / "valid")
    vocab = load_vocab(bert, lowercase=True)
    options = stream.manifest["options"]
    assert (options["eos_token"], options["pad_token"]) == ("[SEP]", "[PAD]")
    assert (stream.eos_id, stream.pad_id) == (vocab.sep_id, vocab.pad_id) == (102, 0)
    assert stream.vocab_size == 30_522 and stream.vocab_file == bert and options["do_lower_case"] is True
    lines = lines_of(wt2 / "valid.txt")[:300]
    expected = [
        [*e.ids, vocab.sep_id] for e in vocab.tokenizer().encode_batch(lines, add_special_tokens=False)
    ]
    flat = np.concatenate(expected)
    assert (stream.tokens[: len(flat)] == flat).all()
    every_line = len(lines_of(wt2 / "valid.txt"))
    assert stream.manifest["counts"]["lines"] == every_line == int((stream.tokens == vocab.sep_id).sum())


def test_wikitext103_valid_and_test_with_a_vocabulary_made_earlier(cli, tmp_path, data_dir):
    wt103 = data_dir / "wikitext-103"
    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(wt103 / "wiki.valid.tokens", source / "wiki.train.tokens")  # no WikiText-103 train here
    prepare(cli, source, tmp_path / "vocab")
    vocab_file = tmp_path / "vocab" / "vocab.txt"
    out = tmp_path / "out"
    prepare(cli, wt103, out, "--vocab-file", vocab_file)
    assert sorted(p.name for p in out.iterdir()) == ["test", "valid"]
    valid, test = TokenStream(out / "valid"), TokenStream(out / "test")
    words = {
        split: [len(line.split()) + 1 for line in lines_of(wt103 / f"wiki.{split}.tokens")]
        for split in ("valid", "test")
    }
    assert valid.vocab_file == vocab_file and valid.vocab_size == len(read_word_vocab(vocab_file))
    assert (len(valid), len(test)) == (sum(words["valid"]), sum(words["test"]))
    assert valid.manifest["counts"]["oov"] == 0 < test.manifest["counts"]["oov"]
    assert (valid.tokens == TokenStream(tmp_path / "vocab" / "train").tokens).all()


@pytest.mark.full_data("wikitext-103/wiki.valid.tokens", "wikitext-103/wiki.test.tokens")
def test_wikitext103_valid_and_test_have_the_sizes_of_wikitext2s(cli, tmp_path, data_dir):
    """The same articles as WikiText-2's valid and test: the same number of words on every line."""
    wt103 = data_dir / "wikitext-103"
    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(wt103 / "wiki.valid.tokens", source / "wiki.train.tokens")
    prepare(cli, source, tmp_path / "vocab")
    prepare(cli, wt103, tmp_path / "out", "--vocab-file", tmp_path / "vocab" / "vocab.txt")
    valid, test = TokenStream(tmp_path / "out" / "valid"), TokenStream(tmp_path / "out" / "test")
    assert valid.vocab_size == 18_892 and (len(valid), len(test)) == (217_646, 245_569)
    assert test.manifest["counts"]["oov"] == 23_316


def test_token_stream_is_mapped_and_checked(tmp_path, wt2, wt2_out):
    stream = TokenStream(wt2_out / "test")
    assert stream.tokens.dtype == np.int32 and not stream.tokens.flags.owndata  # a view of the mapped file
    assert not stream.tokens.flags.writeable
    size = len(read_word_vocab(wt2_out / "vocab.txt"))
    assert len(stream) == sum(len(line.split()) + 1 for line in lines_of(wt2 / "test.txt"))
    assert stream.vocab_size == size and stream.vocab_file == wt2_out / "vocab.txt"
    # Moved with its parent, a split folder finds the vocab.txt beside it.
    moved = tmp_path / "moved"
    shutil.copytree(wt2_out, moved, ignore=shutil.ignore_patterns("train", "valid"))
    manifest = moved / "test" / "manifest.json"
    manifest.write_text(manifest.read_text().replace(str(wt2_out), str(tmp_path / "gone")))
    assert TokenStream(moved / "test").vocab_file == moved / "vocab.txt"
    with (moved / "vocab.txt").open("a") as fh:
        fh.write("not-a-wikitext-word 0\n")
    with pytest.raises(InputError, match=r"not the vocabulary .* was prepared with"):
        TokenStream(moved / "test")
    assert TokenStream(moved / "test", verify=False).vocab_size == size + 1
    tokens = moved / "test" / "tokens.arrow"
    data = bytearray(tokens.read_bytes())
    data[-200] ^= 1
    tokens.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 does not match"):
        TokenStream(moved / "test", verify=True)
    manifest.write_text(manifest.read_text().replace('"kind": "lm"', '"kind": "mlm"'))
    with pytest.raises(InputError, match="holds 'mlm' output, expected 'lm'"):
        TokenStream(moved / "test", verify=False)


def test_shipped_config_and_set(cli, monkeypatch, tmp_path, wt2):
    monkeypatch.chdir(REPO)  # the config's paths are relative to the repository root
    out = tmp_path / "lm"
    config = "configs/lm/prepare-wikitext-wt2.yaml"
    data = f"input={wt2}"  # its ../shared/data, or the excerpts where that is absent
    cli(
        "prepare", "wikitext", "--config", config, "--set", "splits=valid", "--set", data, "--output-dir", out
    )
    assert sorted(p.name for p in out.iterdir()) == ["valid", "vocab.txt"]
    assert TokenStream(out / "valid").manifest["options"]["tokenizer"] == "word"
    cli("validate", "--config", config, "--set", data)  # recognised as prepare wikitext's options by its name


def test_missing_inputs(cli, tmp_path, small, wt2):
    out = tmp_path / "out"
    assert f"--input {tmp_path / 'nowhere'}: no such folder" in failure(cli, tmp_path / "nowhere", out)
    (tmp_path / "empty").mkdir()
    message = failure(cli, tmp_path / "empty", out)
    assert f"--input {tmp_path / 'empty'}: no WikiText split file there; looked for wiki." in message
    message = failure(cli, small, out, "--splits", "valid,test")
    assert f"--splits valid,test: {small} has no valid split (looked for wiki.valid.tokens, " in message
    assert "it holds train, test" in message
    (small / "wiki.train.tokens").rename(small / "train.txt")
    shutil.copyfile(small / "train.txt", small / "wiki.train.tokens")
    message = failure(cli, small, out)
    assert "holds wiki.train.tokens and train.txt, two files of the train split" in message
    message = failure(cli, wt2, out, "--splits", "dev")
    assert "'dev' is not a WikiText split; choose from train, valid, test" in message
    (small / "train.txt").unlink()
    (small / "wiki.train.tokens").unlink()
    message = failure(cli, small, out)
    assert (
        f"--input {small}: no train split (wiki.train.tokens, " in message and "pass --vocab-file" in message
    )
    assert not out.exists()


def test_bad_options_and_vocabularies(cli, tmp_path, small, data_dir):
    out = tmp_path / "out"
    message = failure(cli, small, out, "--tokenizer", "wordpiece")
    assert "tokenizer wordpiece needs vocab_file" in message
    assert "do_lower_case applies to tokenizer wordpiece" in failure(cli, small, out, "--do-lower-case")
    assert "--tokenizer = 'bpe'" in failure(cli, small, out, "--tokenizer", "bpe")
    bert = data_dir / "bert-vocab" / "bert-base-cased-vocab.txt"
    message = failure(cli, small, out, "--vocab-file", bert)
    assert f"{bert}:1: '[PAD]' is not 'token count'" in message and "--tokenizer wordpiece" in message
    words = tmp_path / "dict.txt"
    words.write_text("the 5\n, 3\n", encoding="utf-8")
    assert "lacks <pad>, <eos>, <unk>" in failure(cli, small, out, "--vocab-file", words)
    words.write_text("<pad> 0\n<eos> 3\n<unk> 0\nthe 2\nthe 1\n", encoding="utf-8")
    assert f"{words}:5: token 'the' repeats line 4" in failure(cli, small, out, "--vocab-file", words)
    assert not out.exists()


def test_bad_text_is_named_by_file_and_line(cli, tmp_path, small):
    out = tmp_path / "out"
    test = small / "wiki.test.tokens"
    test.write_bytes(b" = Title = \n \n caf\xe9 au lait \n")
    message = failure(cli, small, out)
    assert f"{test}:3: not valid UTF-8 (byte 0xe9 at column 5); re-encode the file as UTF-8" in message
    assert (out / "train" / "manifest.json").is_file() and not (out / "test").exists()
    test.write_text(" = Title = \n \n café au lait \n", encoding="utf-8")
    result = prepare(cli, small, out)
    assert (
        "(already complete)" in result.stdout and TokenStream(out / "test").manifest["counts"]["lines"] == 3
    )
    train = small / "wiki.train.tokens"
    bad_line = len(lines_of(train)) + 1
    train.write_bytes(train.read_bytes() + b"\xff\n")
    message = failure(cli, small, tmp_path / "out2")
    assert f"{train}:{bad_line}: not valid UTF-8 (byte 0xff at column 1)" in message
    assert not (tmp_path / "out2").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "test.txt").write_bytes(b"")
    message = failure(cli, empty, tmp_path / "out3", "--vocab-file", out / "vocab.txt")
    assert f"{empty / 'test.txt'}: empty" in message and not (tmp_path / "out3" / "test").exists()
