"""Raw text inputs, plain or compressed (.gz, .bz2), read line by line with failures as InputError."""

import bz2
import codecs
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from linctl.errors import InputError

COMPRESSION = {".gz": "gzip", ".bz2": "bz2"}


def compression(path: Path) -> str | None:
    """Return the compression of ``path`` as named by its suffix (``"gzip"``, ``"bz2"``), or None."""
    return COMPRESSION.get(Path(path).suffix.lower())


def decompressed(path: Path, raw: BinaryIO) -> BinaryIO:
    """Wrap the open file ``raw`` of ``path`` so that reads return decompressed bytes."""
    kind = compression(path)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bz2":
        return bz2.BZ2File(raw, mode="rb")
    return raw


def read_head(path: Path, size: int = 8192) -> str | None:
    """Return the first ``size`` decompressed bytes of ``path`` as text, or None if they are not UTF-8."""
    try:
        with open(path, "rb") as raw:
            head = decompressed(path, raw).read(size)
    except (EOFError, OSError) as exc:
        what = f"truncated or corrupt {compression(path)} stream" if compression(path) else "unreadable"
        raise InputError(f"{path}: {what} ({exc})") from None
    try:
        # An incremental decoder does not fail on a character cut in two at the end of the head.
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None


def read_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a UTF-8 text file, decompressing ``.gz`` and ``.bz2`` files on the fly."""
    lineno = 0
    try:
        with open(path, "rb") as raw, decompressed(path, raw) as stream:
            for line in codecs.iterdecode(stream, "utf-8"):
                lineno += 1
                yield line
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}:{lineno + 1}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except EOFError:
        raise InputError(f"{path}: truncated {compression(path)} stream after line {lineno}") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable after line {lineno} ({exc})") from None
