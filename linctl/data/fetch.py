"""A file over HTTP(S): streamed to ``NAME.part``, resumed by a Range request, checked, renamed into place.

A killed or cut download leaves ``NAME.part``; the next run asks the server for the rest (``Range:
bytes=N-``) and starts over when the server answers with the whole file. The file takes its final name only
after its checksum matched the published one, so a file under its final name is always complete.
"""

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from linctl.errors import DownloadError
from linctl.progress import progress

CHUNK = 1 << 16
TIMEOUT_S = 60  # per blocking read, not for the whole file
PART = ".part"


class Unreachable(DownloadError):
    """The server could not be reached or refused the request (no network, DNS, HTTP 404 …)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot download {url} ({reason})")
        self.url, self.reason = url, reason


def part_path(target: Path) -> Path:
    """Return the name under which ``target`` is downloaded before it is checked and renamed."""
    return target.with_name(target.name + PART)


def file_digest(path: Path, algorithm: str) -> str:
    """Return the hex digest of ``path`` by ``algorithm`` (a hashlib name), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def read_url(url: str, limit: int = 1 << 20) -> str:
    """Return the text (UTF-8) of a small file at ``url``, such as a published list of checksums."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read(limit).decode("utf-8")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise Unreachable(url, _reason(exc)) from exc


def fetch(url: str, target: Path, algorithm: str, digest: str, size: int | None = None) -> None:
    """Download ``url`` to ``target``: resume a ``.part`` left by an earlier run, check ``digest``, rename.

    Raises Unreachable when no answer comes, DownloadError when the connection is cut (the ``.part`` is kept
    for the next run) or when the checksum differs (the ``.part`` is removed).
    """
    target = Path(target)
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    try:
        response = _open(url, have)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: nothing after byte `have`; start over, once
            raise Unreachable(url, _reason(exc)) from exc
        part.unlink()
        have = 0
        response = _open(url, 0)
    with response:
        resumed = have > 0 and response.status == 206 and _starts_at(response, have)
        have = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        target.parent.mkdir(parents=True, exist_ok=True)  # only once the server answered
        with open(part, "ab" if resumed else "wb") as fh, progress(f"download {target.name}", total) as step:
            step(have)
            got = have
            try:
                while block := response.read(CHUNK):
                    fh.write(block)
                    got += len(block)
                    step(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _cut(url, part, got, total, _reason(exc)) from exc
            if total is not None and got < total:
                raise _cut(url, part, got, total, "the server closed the connection")
            fh.flush()
            os.fsync(fh.fileno())
    actual = file_digest(part, algorithm)
    if actual != digest:
        part.unlink()
        raise DownloadError(
            f"{url}: {algorithm} {actual} is not the published {digest}; the download was removed, "
            "run again to fetch it anew"
        )
    os.replace(part, target)


def _open(url: str, have: int) -> http.client.HTTPResponse:
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise Unreachable(url, _reason(exc)) from exc


def _starts_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Return True when a 206 answer's Content-Range continues at ``offset``."""
    return response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")


def _cut(url: str, part: Path, got: int, total: int | None, reason: str) -> DownloadError:
    of = f" of {total:,}" if total is not None else ""
    return DownloadError(
        f"cannot download {url}: cut after {got:,}{of} bytes ({reason}); {part} keeps them, "
        "run the same command again to resume"
    )


def _reason(exc: BaseException) -> str:
    """Say in a few words why a request failed."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    with contextlib.suppress(AttributeError):
        if exc.strerror:  # type: ignore[attr-defined]
            return str(exc.strerror)  # type: ignore[attr-defined]
    return str(exc) or type(exc).__name__
