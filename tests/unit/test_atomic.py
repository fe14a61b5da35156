"""linctl.atomic's writers: an OSError met while writing is one OutputError naming the path written."""

import pytest

from linctl.atomic import atomic_path, write_text_atomic
from linctl.errors import OutputError


def test_writers_turn_an_os_error_into_one_output_error(tmp_path):
    """The safety net behind the checks: a writer that meets an OSError names the path it was writing."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match=r"afile/out.json: could not be written \(File exists: .*/afile\)"):
        write_text_atomic(tmp_path / "afile" / "out.json", "{}")
    target = tmp_path / "full.txt"
    full = r"full.txt: could not be written \(No space left on device\)"
    with pytest.raises(OutputError, match=full), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise OSError(28, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # nothing partial left behind


def test_an_input_os_error_inside_a_writer_stays_what_it_is(tmp_path):
    """An OSError about something else (an input read meanwhile) is not blamed on the output."""
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing-input.txt").read_text()
