"""The output-folder claim: one writer at a time, even when several start at the same moment."""

import json
import os
import subprocess
import sys
import time

import pytest

from linctl.data.manifest import PENDING, claimed_output_dir
from linctl.errors import InputError, OutputError

# Each process says it is ready, waits for "go", claims the folder and holds it for two seconds.
CLAIMER = """
import json, os, sys, time
from pathlib import Path
from linctl.data.manifest import claimed_output_dir
from linctl.errors import OutputError
folder, me = Path(sys.argv[1]), sys.argv[2]
(folder.parent / f"ready-{me}").touch()
while not (folder.parent / "go").exists():
    time.sleep(0.001)
try:
    with claimed_output_dir(folder, "race", {"n": 1}, owned=["*.bin"]):
        time.sleep(2)
    print(json.dumps({"pid": os.getpid(), "won": True}))
except OutputError as exc:
    print(json.dumps({"pid": os.getpid(), "won": False, "error": str(exc)}))
"""


def test_processes_starting_together_get_one_claim(tmp_path):
    folder = tmp_path / "out"
    n = 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(folder), str(i)], stdout=subprocess.PIPE, text=True
        )
        for i in range(n)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    results = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    winners = [r["pid"] for r in results if r["won"]]
    assert len(winners) == 1
    for refused in (r for r in results if not r["won"]):
        assert refused["error"].startswith(
            f"--output-dir {folder}: is being written by process {winners[0]} ("
        )
        assert refused["error"].endswith("; wait for it or stop it")


def test_claim_records_its_owner_and_a_failed_run_lets_go(tmp_path):
    folder = tmp_path / "out"
    with (
        pytest.raises(InputError),
        claimed_output_dir(folder, "k", {"a": 1}, ["*.bin"], scratch=[".work"]) as claim,
    ):
        assert claim.done is None
        owner = json.loads((folder / PENDING).read_text())["owner"]
        assert owner["pid"] == os.getpid() and owner["host"] and owner["started"]
        second = claimed_output_dir(folder, "k", {"a": 1}, owned=["*.bin"])
        with pytest.raises(OutputError, match=f"is being written by process {os.getpid()} "), second:
            pass
        (folder / ".work").mkdir()
        raise InputError("bad input")
    assert not folder.exists()  # made by the failed run: claim and folder went
    folder.mkdir()
    with pytest.raises(InputError), claimed_output_dir(folder, "k", {"a": 1}, ["*.bin"], scratch=[".work"]):
        (folder / ".work").mkdir()
        raise InputError("bad input")
    assert list(folder.iterdir()) == []
    with claimed_output_dir(folder, "k", {"a": 2}, owned=["*.bin"]) as claim:  # other options: free
        (folder / "x.bin").write_bytes(b"x")
        claim.finish({"files": 1}, ["x.bin"])
    with claimed_output_dir(folder, "k", {"a": 2}, owned=["*.bin"]) as claim:
        assert claim.done is not None and claim.done["counts"] == {"files": 1}


def test_an_interrupted_run_keeps_its_claim_for_the_resume(tmp_path):
    folder = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), claimed_output_dir(folder, "k", {"a": 1}, owned=["*.bin"]):
        raise KeyboardInterrupt
    assert (folder / PENDING).exists()
    other = claimed_output_dir(folder, "k", {"a": 2}, owned=["*.bin"])
    with pytest.raises(OutputError, match="holds output made with a=1, this run asks a=2"), other:
        pass
    with claimed_output_dir(folder, "k", {"a": 1}, owned=["*.bin"]) as claim:
        assert claim.done is None
