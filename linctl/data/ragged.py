"""Ragged rows: variable-length integer lists stored flat, exactly as Arrow lays out list<int32>."""

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pyarrow as pa


class Ragged(NamedTuple):
    """Row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray  # int64, one more than the number of rows

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray], dtype: type = np.int32) -> "Ragged":
        """Pack ``rows`` into one flat array."""
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        values = np.concatenate(rows).astype(dtype, copy=False) if rows else np.empty(0, dtype)
        return cls(values, np.concatenate([[0], np.cumsum(lengths)]))

    @classmethod
    def from_arrow(cls, column: pa.Array | pa.ChunkedArray) -> "Ragged":
        """Read a list<int32> column (its slice offset and chunks taken into account)."""
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        offsets = column.offsets.to_numpy().astype(np.int64)
        values = column.values.to_numpy()[offsets[0] : offsets[-1]]
        return cls(values, offsets - offsets[0])

    def to_arrow(self) -> pa.ListArray:
        """Return the rows as an Arrow list<int32> array (no copy of the values)."""
        return pa.ListArray.from_arrays(pa.array(self.offsets, pa.int32()), pa.array(self.values, pa.int32()))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def row_ids(self) -> np.ndarray:
        """Row index of each value."""
        return np.repeat(np.arange(len(self)), self.lengths)

    @property
    def columns(self) -> np.ndarray:
        """Position of each value within its row."""
        return np.arange(len(self.values)) - self.offsets[self.row_ids]

    def rows(self) -> list[np.ndarray]:
        """Return the rows as separate arrays (views)."""
        return np.split(self.values, self.offsets[1:-1])

    def padded(self, pad: int, width: int | None = None) -> np.ndarray:
        """Return a (rows, width) matrix, rows left-aligned and filled with ``pad``."""
        width = int(self.lengths.max(initial=0)) if width is None else width
        out = np.full((len(self), width), pad, dtype=self.values.dtype)
        out[self.row_ids, self.columns] = self.values
        return out
