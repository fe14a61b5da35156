"""Arrow shards: IPC files written atomically, read back memory-mapped with random access.

A shard folder holds ``{name}-{i:05d}-of-{n:05d}.arrow`` files and a ``manifest.json`` (see
``linctl.data.manifest``) with the sha256 of each. Token lists are stored unpadded as list<int32>;
padding happens in the collator.
"""

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from linctl.atomic import atomic_path
from linctl.data.manifest import read_manifest
from linctl.data.ragged import Ragged
from linctl.errors import InputError

ROWS_PER_BATCH = 4096


def shard_name(name: str, index: int, count: int) -> str:
    """Return the file name of shard ``index`` of ``count``."""
    return f"{name}-{index:05d}-of-{count:05d}.arrow"


def table_of(columns: Mapping[str, Ragged]) -> pa.Table:
    """Return a table of list<int32> columns."""
    return pa.table({key: ragged.to_arrow() for key, ragged in columns.items()})


@contextlib.contextmanager
def open_writer(path: Path, schema: pa.Schema) -> Iterator[pa.ipc.RecordBatchFileWriter]:
    """Yield a writer of an Arrow IPC file that appears under ``path`` only once closed without error."""
    with (
        atomic_path(Path(path)) as tmp,
        pa.OSFile(str(tmp), "wb") as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        yield writer


def write_table(path: Path, table: pa.Table) -> None:
    """Write ``table`` as an Arrow IPC file, atomically."""
    with open_writer(path, table.schema) as writer:
        writer.write_table(table, max_chunksize=ROWS_PER_BATCH)


def read_table(path: Path) -> pa.Table:
    """Open an Arrow IPC file memory-mapped (nothing is read until used)."""
    try:
        return pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow IPC file ({exc})") from None


class ShardSet(Sequence[dict[str, np.ndarray]]):
    """The examples of a shard folder, in shard order, with random access.

    Opening checks the manifest and, unless ``verify=False``, the sha256 of every shard.
    """

    def __init__(self, folder: Path, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest: dict[str, Any] = read_manifest(self.folder, verify=verify)
        names = list(self.manifest["files"])
        if not names:
            raise InputError(f"{self.folder}: manifest.json lists no shards")
        self.table = pa.concat_tables([read_table(self.folder / name) for name in names])
        self.features: list[str] = self.table.column_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(f"example {index} out of range: {self.folder} holds {len(self)}")
        row = self.table.slice(index % len(self), 1)
        return {key: Ragged.from_arrow(row.column(key)).values for key in self.features}

    def take(self, indices: Sequence[int] | np.ndarray) -> dict[str, Ragged]:
        """Return the examples at ``indices`` as one Ragged per feature."""
        rows = self.table.take(pa.array(np.asarray(indices, dtype=np.int64)))
        return {key: Ragged.from_arrow(rows.column(key)) for key in self.features}
