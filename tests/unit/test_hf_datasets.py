"""linctl's Arrow shards as a Hugging Face `datasets.Dataset`, without a copy: the line README.md gives."""

import numpy as np
import pyarrow as pa
import pytest

from linctl.data.shards import ShardSet

datasets = pytest.importorskip("datasets")  # the test extra


def test_a_shard_folder_is_a_dataset_with_the_same_rows(tiny_shards):
    shards = ShardSet(tiny_shards["eval"])  # static masks: every standard feature
    dataset = datasets.Dataset(shards.table)
    assert len(dataset) == len(shards) and dataset.column_names == shards.features
    rows = dataset.with_format("numpy")
    for i in (0, len(shards) // 2, len(shards) - 1):
        for key, values in shards[i].items():
            np.testing.assert_array_equal(rows[i][key], values)


def test_the_dataset_columns_are_views_of_the_memory_mapped_shard(tiny_shards):
    (name, *_) = ShardSet(tiny_shards["eval"]).manifest["files"]
    source = pa.memory_map(str(tiny_shards["eval"] / name))
    dataset = datasets.Dataset(pa.ipc.open_file(source).read_all())
    source.seek(0)
    mapped = source.read_buffer()  # the whole file, itself a view of the mapping
    buffers = [b for column in dataset.data.table.columns for c in column.chunks for b in c.buffers() if b]
    assert buffers and all(mapped.address <= b.address < mapped.address + mapped.size for b in buffers)
