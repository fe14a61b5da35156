"""Atomic file output: write under a temporary name in the same folder, then rename into place.

A process killed at any moment leaves either the complete file under its final name or no file at all
(plus, at worst, a stray ``.tmp-*`` file that the next run overwrites or removes).
"""

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

TMP_MARK = ".tmp-"


def tmp_path_for(path: Path) -> Path:
    """Return the temporary name under which ``path`` is written before the rename."""
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to ``path``."""
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_tmp(folder: Path) -> None:
    """Delete temporary files a killed run left in ``folder``."""
    for stray in Path(folder).glob(f"*{TMP_MARK}*"):
        if stray.is_file():
            stray.unlink()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
