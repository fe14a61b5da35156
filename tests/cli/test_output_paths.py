"""An output path that cannot be written is one line `error: OPTION PATH: …` with exit 2, before any work.

Each command checks its output folders and files first (linctl.atomic.check_writable_folder/_file): a
file where a folder is wanted, a folder where a file is wanted, a path under a file, a folder one may not
write.
The inputs here are tiny or do not even exist: the check runs before any of them is read, which the tests
also show (an input problem would be another message).
"""

import os
from pathlib import Path

import pytest

TINY = Path(__file__).resolve().parents[2] / "configs" / "mlm" / "tiny.yaml"


def one_line_error(result) -> str:
    assert result.exit_code == 2, f"exit {result.exit_code}\n{result.stderr}\n{result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _text(tmp: Path) -> Path:
    (tmp / "part").write_text("The cat sat on the mat .\nA dog ran .\n", encoding="utf-8")
    (tmp / "meta.txt").write_text(f"{tmp / 'part'}\n", encoding="utf-8")
    (tmp / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n", encoding="utf-8")
    return tmp


# Commands with an output FOLDER: (option, argv given the inputs' folder and the output path).
FOLDERS = {
    "train": ("--model-dir", lambda t, out: ["train", "--config", TINY, "--model-dir", out]),
    "prepare vocab": ("--output-dir", lambda t, out: [
        "prepare", "vocab", "--metadata-files", t / "meta.txt", "--output-dir", out, "--vocab-size", 211,
        "--min-frequency", 1]),
    "prepare mlm": ("--output-dir", lambda t, out: [
        "prepare", "mlm", "--metadata-files", t / "meta.txt", "--vocab-file", t / "vocab.txt",
        "--output-dir", out, "--max-seq-length", 16, "--max-predictions-per-seq", 3]),
    "prepare glue": ("--output-dir", lambda t, out: [
        "prepare", "glue", "--task", "rte", "--input", t, "--vocab-file", t / "vocab.txt",
        "--output-dir", out]),
    "prepare wikicorpus": ("--output-dir", lambda t, out: [
        "prepare", "wikicorpus", "--input", t / "part", "--output-dir", out]),
    "prepare wikitext": ("--output-dir", lambda t, out: [
        "prepare", "wikitext", "--input", t, "--output-dir", out]),
    "compile": ("--output-dir", lambda t, out: ["compile", "--config", TINY, "--output-dir", out]),
}  # fmt: skip

# Commands with an output FILE.
FILES = {
    "eval --json": ("--json", lambda t, out: ["eval", "--checkpoint", t / "nothing", "--json", out]),
    "eval --tsv": ("--tsv", lambda t, out: ["eval", "--checkpoint", t / "nothing", "--tsv", out]),
    "validate --json": ("--json", lambda t, out: ["validate", "--config", TINY, "--no-data", "--json", out]),
    **{
        f"bench {flag}": (flag, lambda t, out, flag=flag: [
            "bench", "--preset", "small", "--seq-len", "33", "--attention", "softmax impl=sdpa",
            "--repeats", 1, flag, out])
        for flag in ("--json", "--csv", "--plot")
    },
}  # fmt: skip


@pytest.mark.parametrize("command", FOLDERS)
def test_output_folder_that_is_a_file(cli, tmp_path, command):
    option, argv = FOLDERS[command]
    out = tmp_path / "out"
    out.write_text("not a folder\n")
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert line == f"error: {option} {out}: exists and is a file; give a folder"
    assert out.read_text() == "not a folder\n"


@pytest.mark.parametrize("command", FOLDERS)
def test_output_folder_under_a_file(cli, tmp_path, command):
    option, argv = FOLDERS[command]
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub"
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert line == (
        f"error: {option} {out}: {tmp_path / 'afile'} is a file, not a folder; give a folder in a folder"
    )


@pytest.mark.parametrize("command", FOLDERS)
def test_output_folder_not_writable(cli, tmp_path, monkeypatch, command):
    # The tests run as root, who may write into a folder without write permission (chmod does not stop
    # root), and no read-only mount is at hand: so the kernel's answer is mocked. os.access is what the check
    # asks, and it also says no on a read-only mount, even to root.
    option, argv = FOLDERS[command]
    locked = tmp_path / "locked"
    locked.mkdir()
    out = locked / "out"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and real(p, mode, **kw))
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert line == (
        f"error: {option} {out}: cannot write there (Permission denied); choose a folder you can write to"
    )
    assert not out.exists()


@pytest.mark.parametrize("command", FILES)
def test_output_file_that_is_a_folder(cli, tmp_path, command):
    option, argv = FILES[command]
    out = tmp_path / "out"
    out.mkdir()
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert line == f"error: {option} {out}: exists and is a folder; give a file name"


@pytest.mark.parametrize("command", FILES)
def test_output_file_under_a_file(cli, tmp_path, command):
    option, argv = FILES[command]
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "out.json"
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert (
        line
        == f"error: {option} {out}: {tmp_path / 'afile'} is a file, not a folder; give a file in a folder"
    )


@pytest.mark.parametrize("command", FILES)
def test_output_file_not_writable(cli, tmp_path, monkeypatch, command):
    # Root writes through chmod: mock os.access (see test_output_folder_not_writable).
    option, argv = FILES[command]
    out = tmp_path / "out.json"
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != tmp_path and real(p, mode, **kw))
    line = one_line_error(cli(*argv(_text(tmp_path), out), ok=False))
    assert (
        line
        == f"error: {option} {out}: cannot write there (Permission denied); choose a file you can write to"
    )
