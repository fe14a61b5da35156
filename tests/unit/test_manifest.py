"""The output-folder claim: a failed run lets go of it, an interrupted one keeps it for the resume."""

import pytest

from linctl.data.manifest import PENDING, claimed_output_dir
from linctl.errors import InputError, OutputError


def test_a_failed_run_lets_go_of_its_claim(tmp_path):
    folder = tmp_path / "out"
    with (
        pytest.raises(InputError),
        claimed_output_dir(folder, "k", {"a": 1}, ["*.bin"], scratch=[".work"]) as claim,
    ):
        assert claim.done is None
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
