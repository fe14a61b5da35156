"""Atomic file output: write under a temporary name in the same folder, then rename into place.

A process killed at any moment leaves either the complete file under its final name or no file at all
(plus, at worst, a stray ``.tmp-*`` file that the next run overwrites or removes).
"""

import contextlib
import hashlib
import os
import shutil
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


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` to fill; on success it takes ``path``'s place.

    A folder already at ``path`` is moved aside before the rename and deleted after it, so ``path`` is
    always either the old complete folder or the new one. On failure the temporary folder is deleted.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    remove(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = path.with_name(f"{path.name}{TMP_MARK}old-{os.getpid()}")
        if path.exists() or path.is_symlink():
            os.replace(path, old)
        os.replace(tmp, path)
        remove(old)
    except BaseException:
        remove(tmp)
        raise


def remove(path: Path) -> None:
    """Delete a file, link or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


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
