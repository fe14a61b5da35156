"""The manifest of an output folder: what made it, what it holds, and how to resume it.

A run first *claims* its output folder: it records its kind and options in a pending marker, or finds the
marker of an earlier killed run with the same options and resumes it. A folder that already holds output
of another kind or of other options is refused, so two recipes never mix in one folder. The run ends by
writing ``manifest.json`` (schema version, options, counts, sha256 of each file) and dropping the marker.

Writers use ``claimed_output_dir``, which also holds a lock on the folder for the whole run: a second run
into a folder that a live process is writing is refused at once, and a run that fails on its input
releases its claim, so that the corrected run may use the folder. The lock is a ``flock`` on the folder,
which the kernel lets go of when its process dies: a killed run's claim is resumed as before. The pending
marker records its run's pid, host and start time, which a refused second run names.
"""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linctl import __version__
from linctl.atomic import remove_stale_tmp, sha256_file, write_text_atomic
from linctl.errors import InputError, LinctlError, OutputError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PENDING = ".linctl-pending.json"


def jsonable(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``options`` with paths and other non-JSON values as strings."""
    return json.loads(json.dumps(dict(options), default=str))


def claim_output_dir(
    folder: Path, kind: str, options: Mapping[str, Any], owned: Iterable[str], ignore: Iterable[str] = ()
) -> dict[str, Any] | None:
    """Prepare ``folder`` for a run; return its manifest if the same run already completed there.

    Args:
        owned: glob patterns of the files this kind of run writes; such files in a folder without a
            linctl marker are refused rather than overwritten.
        ignore: option names that do not change the output (e.g. ``workers``), left out of comparisons.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--output-dir {folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(folder)  # what a killed run left, its claim's own temporary file included
    wanted = {"kind": kind, "options": _compared(jsonable(options), ignore)}
    for marker in (MANIFEST, PENDING):
        path = folder / marker
        if path.exists():
            found = _read_json(path)
            have = {"kind": found.get("kind"), "options": _compared(found.get("options", {}), ignore)}
            if have != wanted:
                raise OutputError(f"--output-dir {folder}: {_difference(have, wanted)}; use another folder")
            if marker == MANIFEST and all((folder / name).is_file() for name in found.get("files", {})):
                return found
            # A killed run, or a finished one that lost files: resume, keeping the complete files there.
            resumed = {"kind": kind, "options": found["options"], "owner": _owner()}
            write_text_atomic(folder / PENDING, json.dumps(resumed, indent=2))
            if marker == MANIFEST:
                path.unlink()
            return None
    strays = sorted(p.name for pattern in owned for p in folder.glob(pattern))
    if strays:
        raise OutputError(
            f"--output-dir {folder}: holds {strays[0]} (and {len(strays) - 1} more) not made by linctl "
            f"prepare {kind}; use an empty folder"
        )
    claim = {"kind": kind, "options": jsonable(options), "owner": _owner()}
    write_text_atomic(folder / PENDING, json.dumps(claim, indent=2))
    return None


def finish_output_dir(
    folder: Path, kind: str, options: Mapping[str, Any], counts: Mapping[str, Any], files: Iterable[str]
) -> dict[str, Any]:
    """Write ``manifest.json`` with the sha256 of each of ``files`` (names in ``folder``); drop the marker."""
    folder = Path(folder)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "linctl_version": __version__,
        "options": jsonable(options),
        "counts": dict(counts),
        "files": {name: sha256_file(folder / name) for name in files},
    }
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    (folder / PENDING).unlink(missing_ok=True)
    return manifest


def abandon_output_dir(folder: Path, owned: Iterable[str], scratch: Iterable[str] = ()) -> None:
    """Forget a run that failed on its input, so that the folder is free for a corrected run.

    The claim is dropped only when none of the run's ``owned`` files was finished (those are worth
    resuming); ``scratch`` folders and temporary files go.
    """
    folder = Path(folder)
    for name in scratch:
        shutil.rmtree(folder / name, ignore_errors=True)
    remove_stale_tmp(folder)
    if not any(path for pattern in owned for path in folder.glob(pattern)):
        (folder / PENDING).unlink(missing_ok=True)


@dataclass
class OutputClaim:
    """A run's hold on its output folder; ``done`` is the manifest when the same run already completed."""

    folder: Path
    kind: str
    options: Mapping[str, Any]
    done: dict[str, Any] | None
    manifest: dict[str, Any] | None = None

    def finish(self, counts: Mapping[str, Any], files: Iterable[str]) -> dict[str, Any]:
        """Write the folder's manifest (see ``finish_output_dir``) and return it."""
        self.manifest = finish_output_dir(self.folder, self.kind, self.options, counts, files)
        return self.manifest


@contextlib.contextmanager
def claimed_output_dir(
    folder: Path,
    kind: str,
    options: Mapping[str, Any],
    owned: Iterable[str],
    ignore: Iterable[str] = (),
    scratch: Iterable[str] = (),
) -> Iterator[OutputClaim]:
    """Lock and claim ``folder`` for a run (see ``claim_output_dir``); the one way writers claim a folder.

    A run that leaves with a ``LinctlError`` before ``finish`` is abandoned (``abandon_output_dir``, which
    removes its ``scratch`` folders; a folder it created goes if empty). Any other way out (an interrupt,
    a bug) keeps the claim, as a killed run does, for the rerun to resume. The lock goes in every case.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--output-dir {folder}: exists and is not a folder")
    owned, created = list(owned), not folder.exists()
    with _locked(folder):
        claim = None
        try:
            claim = OutputClaim(folder, kind, options, claim_output_dir(folder, kind, options, owned, ignore))
            yield claim
        except LinctlError:
            if claim is not None and claim.done is None and claim.manifest is None:
                abandon_output_dir(folder, owned, scratch)
            if created:
                with contextlib.suppress(OSError):  # only an empty folder goes
                    folder.rmdir()
            raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the lock of ``folder`` (made if missing), or refuse at once, naming the process that holds it.

    The lock is a ``flock`` on the folder itself: it leaves no file behind, and the kernel lets go of it
    when its process dies, however it dies.
    """
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # a failed run removed the folder between our mkdir and open
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(
                f"--output-dir {folder}: is being written by {_holder(folder)}; wait for it or stop it"
            ) from None
        except OSError:  # a file system without locks (some network ones): run unlocked, as before locks
            break
        # A failed run removes the folder it made as it lets go: a lock on a removed folder guards nothing.
        with contextlib.suppress(FileNotFoundError):
            here, held = os.stat(folder), os.fstat(fd)
            if (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                break
        os.close(fd)
    try:
        yield
    finally:
        os.close(fd)  # closing the last descriptor lets go of the lock


def _owner() -> dict[str, Any]:
    """Return who is running: recorded in the pending marker, for a second run's refusal to name."""
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started}


def _holder(folder: Path) -> str:
    """Describe the process holding the lock of ``folder`` from the owner its pending marker records."""
    for _ in range(20):  # it records itself just after it takes the lock: wait for that a moment
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            owner = json.loads((folder / PENDING).read_text(encoding="utf-8"))["owner"]
            pid, host = int(owner["pid"]), str(owner["host"])
            if host != socket.gethostname():
                return f"process {pid} on {host} (started {owner['started']})"
            if _alive(pid):  # not the stale record of a killed run
                return f"process {pid} (started {owner['started']})"
        time.sleep(0.05)
    return "another process"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True


def read_manifest(folder: Path, kind: str | None = None, verify: bool = True) -> dict[str, Any]:
    """Read the manifest of a completed output folder, checking schema, kind and (optionally) checksums."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        why = "a run there did not finish" if (folder / PENDING).exists() else "no manifest.json"
        raise InputError(f"{folder}: not a completed linctl output folder ({why})")
    manifest = _read_json(path)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"{path}: schema_version {manifest.get('schema_version')!r}; this linctl reads {SCHEMA_VERSION}"
        )
    if kind is not None and manifest.get("kind") != kind:
        raise InputError(f"{path}: holds {manifest.get('kind')!r} output, expected {kind!r}")
    for name, digest in manifest.get("files", {}).items():
        file = folder / name
        if not file.is_file():
            raise InputError(f"{file}: listed in {MANIFEST} but missing")
        if verify and sha256_file(file) != digest:
            raise InputError(f"{file}: sha256 does not match {MANIFEST} (file changed or corrupt)")
    return manifest


def _compared(options: Mapping[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    skip = set(ignore)
    return {k: v for k, v in options.items() if k not in skip}


def _difference(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> str:
    if have["kind"] != wanted["kind"]:
        return f"holds {have['kind']!r} output, not {wanted['kind']!r}"
    old, new = have["options"], wanted["options"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"holds output made with {key}={old.get(key)!r}, this run asks {key}={new.get(key)!r}"
    return "holds output made with other options"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object")
    return data
