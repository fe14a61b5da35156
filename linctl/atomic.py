"""Atomic file output: write under a temporary name in the same folder, then rename into place.

A process killed at any moment leaves either the complete file under its final name or no file at all
(plus, at worst, a stray ``.tmp-*`` file that the next run overwrites or removes).
"""

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from linctl.errors import OutputError

TMP_MARK = ".tmp-"


def check_writable_folder(path: Path, option: str) -> None:
    """Raise OutputError unless ``path`` is, or can be made, a folder this process may write into.

    Every command calls this for each output folder before it does any work, so that a file in the way or a
    folder it may not write fails at once in one line naming the option, not after hours as an OSError.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: exists and is a file; give a folder")
    _check_creatable(path, option, "folder")


def check_writable_file(path: Path, option: str) -> None:
    """Raise OutputError unless a file may be written at ``path`` (its folder is made when missing)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: exists and is a folder; give a file name")
    _check_creatable(path.parent if path.name else path, option, "file", shown=path)


def _check_creatable(folder: Path, option: str, kind: str, shown: Path | None = None) -> None:
    """Check that the nearest existing folder on ``folder``'s path is a folder we may write into."""
    shown = folder if shown is None else shown
    nearest = folder
    while not nearest.exists() and nearest != nearest.parent:
        nearest = nearest.parent
    if nearest.exists() and not nearest.is_dir():
        raise OutputError(f"{option} {shown}: {nearest} is a file, not a folder; give a {kind} in a folder")
    # access() asks the kernel: it also answers no on a read-only mount, even to root.
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise OutputError(
            f"{option} {shown}: cannot write there (Permission denied); choose a {kind} you can write to"
        )


# What writing can meet with no file name on the error: a full disk or quota, a read-only mount.
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _writing(exc: OSError, path: Path, tmp: Path) -> bool:
    """Return True when ``exc`` is about writing ``path`` (not, say, about reading an input meanwhile)."""
    if exc.filename is None:
        return exc.errno in _FULL
    return Path(exc.filename) in (path, tmp, path.parent) or path.parent.is_relative_to(exc.filename)


def _output_error(path: Path, exc: OSError) -> OutputError:
    """One line for an OSError met while writing ``path``: the path, what the OS said and what to do."""
    said = exc.strerror or type(exc).__name__
    if exc.filename is not None and Path(exc.filename) not in (path, tmp_path_for(path)):
        said = f"{said}: {exc.filename}"  # e.g. the file that stands where a folder of the path should be
    return OutputError(
        f"{path}: could not be written ({said}); fix that (free space, permissions) and run again"
    )


def tmp_path_for(path: Path) -> Path:
    """Return the temporary name under which ``path`` is written before the rename."""
    return path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it and rename it to ``path``.

    An OSError on the way (a full disk, a folder one may not write) becomes one OutputError naming ``path``.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if _writing(exc, path, tmp):
            raise _output_error(path, exc) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
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
