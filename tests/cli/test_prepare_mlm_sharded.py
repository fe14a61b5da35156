"""`prepare mlm --shard-index I --num-shards N` on N machines, then `prepare merge-manifests`: one folder
with the examples of one run over all the input files."""

import json
from collections import Counter
from pathlib import Path

import pytest

from linctl.data.shards import ShardSet


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir) -> Path:
    """Three input files of WikiText-2 valid text, listed in one metadata file."""
    root = tmp_path_factory.mktemp("inputs")
    lines = (data_dir / "wikitext-2" / "valid.txt").read_text(encoding="utf-8").splitlines()
    for i in range(3):
        part = lines[i * 60 : (i + 1) * 60]
        (root / f"part-{i}").write_text("\n".join(line.strip() for line in part) + "\n", encoding="utf-8")
    (root / "meta.txt").write_text("".join(f"{root / f'part-{i}'}\n" for i in range(3)), encoding="utf-8")
    return root / "meta.txt"


def prepare(cli, meta: Path, vocab: Path, out: Path, *extra: object, ok: bool = True):
    return cli("prepare", "mlm", "--metadata-files", meta, "--output-dir", out, "--vocab-file", vocab,
               "--do-lower-case", "--max-seq-length", 16, "--max-predictions-per-seq", 3,
               "--multiple-docs-in-single-file", "--single-sentence-per-line", "--num-output-files", 2,
               "--dupe-factor", 1, *extra, ok=ok)  # fmt: skip


def examples(folder: Path) -> Counter:
    shards = ShardSet(folder)
    return Counter(tuple(shards[i]["input_ids"]) for i in range(len(shards)))


def test_slices_merged_hold_the_examples_of_one_run(cli, inputs, tiny_shards, tmp_path):
    vocab = tiny_shards["vocab"]
    prepare(cli, inputs, vocab, tmp_path / "whole")
    for index in (1, 0):  # the machines finish in any order
        prepare(cli, inputs, vocab, tmp_path / "corpus" / f"part-{index}", "--shard-index", index,
                "--num-shards", 2)  # fmt: skip
    slices = [examples(tmp_path / "corpus" / f"part-{index}") for index in (0, 1)]
    assert not slices[0].keys() & slices[1].keys()  # disjoint: files 0 and 2, then file 1
    corpus = tmp_path / "corpus"
    merge = ["prepare", "merge-manifests", "--output-dir", corpus, "--input", corpus / "part-0",
             "--input", corpus / "part-1"]  # fmt: skip
    result = cli(*merge)
    assert "merged" in result.stdout
    assert examples(tmp_path / "corpus") == examples(tmp_path / "whole")
    merged = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    assert list(merged["files"]) == [
        f"part-{i}/examples-0000{j}-of-00002.arrow" for i in (0, 1) for j in (0, 1)
    ]  # fmt: skip
    assert {k: v for k, v in merged["counts"].items() if k != "shards"} == {
        k: v for k, v in whole["counts"].items() if k != "shards"
    }
    again = cli(*merge)
    assert "already complete" in again.stdout


def test_merge_refuses_a_missing_slice_and_another_recipe(cli, inputs, tiny_shards, tmp_path):
    vocab = tiny_shards["vocab"]
    prepare(cli, inputs, vocab, tmp_path / "a", "--shard-index", 0, "--num-shards", 2)
    prepare(cli, inputs, vocab, tmp_path / "b", "--shard-index", 1, "--num-shards", 2, "--seed", 7)
    missing = cli(
        "prepare", "merge-manifests", "--output-dir", tmp_path / "m", "--input", tmp_path / "a", ok=False
    )
    assert missing.exit_code == 2
    assert missing.stderr.strip() == (
        "error: --input: no folder of slice 1 of 2 (--num-shards 2); give the output folder of every slice"
    )
    other = cli("prepare", "merge-manifests", "--output-dir", tmp_path / "m",
                "--input", tmp_path / "a", "--input", tmp_path / "b", ok=False)  # fmt: skip
    assert other.exit_code == 2 and "made with seed=7" in other.stderr
    assert len(other.stderr.splitlines()) == 1
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_a_slice_beyond_the_shards_is_refused(cli, inputs, tiny_shards, tmp_path):
    result = prepare(cli, inputs, tiny_shards["vocab"], tmp_path / "x", "--shard-index", 3, "--num-shards", 2,
                     ok=False)  # fmt: skip
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "shard_index (3) must be < num_shards (2): the slices are 0 to 1" in result.stderr
