"""The command line as a whole: version, error mapping, config files with flags on top."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from linctl import __version__


def test_version(cli):
    assert cli("--version").stdout.strip() == f"linctl {__version__}"


def test_bad_input_is_one_line_exit_2_and_debug_shows_the_traceback(tmp_path):
    args = [
        sys.executable,
        "-m",
        "linctl",
        "prepare",
        "mlm",
        "--metadata-files",
        str(tmp_path / "absent.txt"),
    ]
    args += ["--vocab-file", str(tmp_path / "v.txt"), "--output-dir", str(tmp_path / "out")]
    quiet = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "LINCTL_DEBUG": "0"})
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines() == [f"error: --vocab-file {tmp_path / 'v.txt'}: file not found"]
    loud = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "LINCTL_DEBUG": "1"})
    assert loud.returncode == 2
    assert "Traceback" in loud.stderr and "InputError" in loud.stderr


def test_config_file_then_set_then_flags(tmp_path, cli, data_dir):
    meta = tmp_path / "meta.txt"
    meta.write_text(f"{data_dir / 'wikitext-2' / 'valid.txt'}\n")
    config = tmp_path / "prepare-mlm-small.yaml"
    config.write_text(
        f"metadata_files: [{meta}]\nvocab_file: {data_dir / 'bert-vocab' / 'bert-base-cased-vocab.txt'}\n"
        "single_sentence_per_line: true\nmultiple_docs_in_single_file: true\n"
        "max_seq_length: 256\ndupe_factor: 1\nnum_output_files: 1\nseed: 4\n"
    )
    out = tmp_path / "out"
    cli("prepare", "mlm", "--config", config, "--set", "seed=9", "--max-seq-length", 64, "--output-dir", out)
    options = json.loads((out / "manifest.json").read_text())["options"]
    assert (options["max_seq_length"], options["seed"], options["dupe_factor"]) == (64, 9, 1)
    bad = cli(
        "prepare", "mlm", "--config", config, "--set", "max_seq_length=4", "--output-dir", out, ok=False
    )
    assert bad.exit_code == 2
    assert f"{config}: max_seq_length = 4" in bad.stderr


def test_stdout_holds_the_result_and_stderr_the_notes(cli):
    result = cli("bench", "--preset", "small", "--seq-len", "33", "--attention", "softmax impl=sdpa",
                 "--warmup", "0", "--repeats", "1", "--peers")  # fmt: skip
    progress, note = "softmax impl=sdpa n=33 batch=1: ok", "note: --peers compares whole models"
    assert progress in result.stderr and note in result.stderr
    assert progress not in result.stdout and "note:" not in result.stdout
    title, *table = result.stdout.strip().splitlines()  # the table and nothing else
    assert "matmul" in title and all(line[0] in "┏┃┡│└" for line in table)
    assert "tokens/s" in table[1] and "softmax impl=sdpa" in table[3]


def test_an_empty_config_file_is_one_line(tmp_path, cli):
    config = tmp_path / "run.yaml"
    config.write_text("# to be written\n")
    result = cli("train", "--config", config, ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {config}: the config file is empty; write the config's keys in it "
        "(configs/<family>/tiny.yaml are examples)"
    ]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["prepare", "vocab", "--help"]], ids=" ".join)
def test_a_full_standard_output_is_one_line_and_no_traceback(args):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "linctl", *args], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: cannot write to standard output: No space left on device"]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["trian"],
            "error: no command 'trian'; commands: train, validate, eval, bench, report, compile, download, "
            "prepare",
        ),
        (
            ["prepare", "vocb"],
            "error: no command 'vocb' in prepare; commands: wikicorpus, vocab, mlm, merge-manifests, glue, "
            "wikitext, translation, wmt14",
        ),
        (["bench", "--seq-le", "3"], "error: bench has no option --seq-le; did you mean --seq-len?"),
        (["--bogus"], "error: linctl has no option --bogus; options: --help, --version"),
        (
            ["prepare", "vocab", "--zzz"],
            "error: prepare vocab has no option --zzz; options: --do-lower-case, --help, "
            "--input-files-prefix, --metadata-files, --min-frequency, --no-do-lower-case, --output-dir, "
            "--vocab-size, --workers",
        ),
    ],
    ids=["command", "sub-command", "option-typo", "root-option", "option"],
)
def test_an_unknown_command_or_option_is_one_line_naming_the_valid_ones(cli, args, line):
    result = cli(*args, ok=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [line]


def signalled_as_it_opens(path: Path, signum: int, *args: str) -> tuple[int, list[str]]:
    """Run ``linctl ARGS`` with ``signum`` delivered as it opens ``path`` (or a file under it): exit code and
    the lines linctl wrote to stderr."""
    name = signal.Signals(signum).name.removeprefix("SIG")
    inject = ["strace", "-qq", "-o", os.devnull, "-P", str(path), "-e", "trace=openat",
              "-e", f"inject=openat:signal={name}"]  # fmt: skip
    done = subprocess.run([*inject, sys.executable, "-m", "linctl", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    return done.returncode, [said for said in done.stderr.splitlines() if not said.startswith("strace: ")]


needs_strace = pytest.mark.skipif(
    shutil.which("strace") is None, reason="strace delivers the signal at a chosen moment"
)


@needs_strace
@pytest.mark.parametrize(("signum", "line", "code"), [
    (signal.SIGINT, "interrupted: finished output files are kept; run the same command again to resume", 130),
    (signal.SIGTERM, "terminated: finished output files are kept; run the same command again to resume", 143),
])  # fmt: skip
def test_a_signal_while_the_command_line_loads_ends_it_in_one_line(signum, line, code):
    typer_dir = Path(typer.__file__).parent  # listed while linctl loads its app, before any command runs
    assert signalled_as_it_opens(typer_dir, signum, "--help") == (code, [line])


@needs_strace
def test_a_sigterm_while_the_root_options_are_parsed_is_not_an_interrupt():
    # typer imports its click decorators as it parses the root's options, outside any command; a stop
    # there once came out as typer's silent exit 130, SIGTERM or not (the fault suite hit it).
    click = Path(typer.__file__).parent / "_click"
    decorators = Path(importlib.util.cache_from_source(str(click / "decorators.py")))  # the bytecode read
    assert signalled_as_it_opens(decorators, signal.SIGTERM, "--version") == (
        143,
        ["terminated: finished output files are kept; run the same command again to resume"],
    )
