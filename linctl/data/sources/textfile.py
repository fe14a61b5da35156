"""Raw text inputs, plain or compressed (.gz, .bz2), read line by line with failures as InputError.

This is the one place where text inputs are decoded: strict UTF-8, and a bad byte is reported with its
file, line and column (``decode_line``). Every prepare command reads its text through ``read_lines``.
"""

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


def decode_line(path: Path, lineno: int, data: bytes) -> str:
    """Decode one line of ``path`` as strict UTF-8, or raise InputError naming the line and the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(data[: exc.start].decode("utf-8")) + 1
        raise InputError(
            f"{path}:{lineno}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at column {column}); "
            "re-encode the file as UTF-8"
        ) from None


def read_head(path: Path, size: int = 8192) -> bytes:
    """Return the first ``size`` decompressed bytes of ``path``."""
    try:
        with open(path, "rb") as raw:
            return decompressed(path, raw).read(size)
    except (EOFError, OSError) as exc:
        what = f"truncated or corrupt {compression(path)} stream" if compression(path) else "unreadable"
        raise InputError(f"{path}: {what} ({exc})") from None


def decode_head(path: Path, head: bytes) -> str:
    """Decode the first bytes of ``path`` (``read_head``) as ``decode_line`` does, line by line.

    The last line of the head may be cut in the middle of a character; its complete characters are kept.
    """
    *lines, last = head.split(b"\n")
    text = [decode_line(path, lineno, line + b"\n") for lineno, line in enumerate(lines, 1)]
    try:
        text.append(codecs.getincrementaldecoder("utf-8")().decode(last, final=False))
    except UnicodeDecodeError:
        text.append(decode_line(path, len(lines) + 1, last))  # raises, naming the byte
    return "".join(text)


def read_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a UTF-8 text file, decompressing ``.gz`` and ``.bz2`` files on the fly."""
    lineno = 0
    try:
        with open(path, "rb") as raw, decompressed(path, raw) as stream:
            for data in stream:
                lineno += 1
                yield decode_line(path, lineno, data)
    except EOFError:
        raise InputError(f"{path}: truncated {compression(path)} stream after line {lineno}") from None
    except OSError as exc:
        raise InputError(f"{path}: unreadable after line {lineno} ({exc})") from None
