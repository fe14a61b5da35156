"""`linctl prepare glue` on the real GLUE-family files in ../shared/data/glue with the BERT vocabulary."""

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from linctl.data.shards import ShardSet
from linctl.data.tokenizer import load_vocab

REPO = Path(__file__).resolve().parents[2]
SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def vocab_file(data_dir) -> Path:
    return data_dir / "bert-vocab" / "bert-base-uncased-vocab.txt"


@pytest.fixture(scope="module")
def vocab(vocab_file):
    return load_vocab(vocab_file, lowercase=True)


def prepare(cli, vocab_file, task, input, out, *extra, ok=True):
    args = ["prepare", "glue", "--task", task, "--input", input, "--output-dir", out]
    return cli(*args, "--vocab-file", vocab_file, "--do-lower-case", *extra, ok=ok)


@pytest.fixture(scope="module")
def glue_out(tmp_path_factory, cli, data_dir, vocab_file):
    """Prepare a task once per module: ``glue_out(task, *extra)`` returns its output folder."""
    built: dict[tuple, Path] = {}

    def run(task: str, *extra) -> Path:
        key = (task, *map(str, extra))
        if key not in built:
            out = tmp_path_factory.mktemp(task)
            prepare(cli, vocab_file, task, data_dir / "glue" / task, out, *extra)
            built[key] = out
        return built[key]

    return run


def rows(folder: Path) -> pa.Table:
    return ShardSet(folder).table


def tsv_rows(path: Path, header: bool = True) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[header:]]


def jsonl_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def decode(vocab, ids) -> list[str]:
    return [vocab.tokens[i] for i in ids]


def bert_truncate(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Google BERT's _truncate_seq_pair: pop off the longer side (B on a tie) until the pair fits."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def check_framing(table: pa.Table, vocab, max_seq_length: int, pair: bool) -> None:
    for ids, segments in zip(
        table.column("input_ids").to_pylist(), table.column("segment_ids").to_pylist(), strict=True
    ):
        assert ids[0] == vocab.cls_id and ids[-1] == vocab.sep_id
        assert len(ids) == len(segments) <= max_seq_length
        seps = [i for i, t in enumerate(ids) if t == vocab.sep_id]
        assert len(seps) == (2 if pair else 1)
        assert segments == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)


def test_sst2_dev_and_test(glue_out, data_dir, vocab):
    out = glue_out("SST-2", "--splits", "dev,test", "--max-seq-length", 31)
    assert sorted(p.name for p in out.iterdir()) == ["dev", "test"]
    dev, test = rows(out / "dev"), rows(out / "test")
    dev_rows = tsv_rows(data_dir / "glue" / "SST-2" / "dev.tsv")
    test_count = len(tsv_rows(data_dir / "glue" / "SST-2" / "test.tsv"))
    assert dev.num_rows == len(dev_rows) and test.num_rows == test_count
    assert dev.schema.field("labels").type == pa.int64()
    assert dev.column("labels").to_pylist() == [int(label) for _, label in dev_rows]
    assert dev.column("index").to_pylist() == list(range(len(dev_rows)))
    first = decode(vocab, dev.column("input_ids")[0].as_py())
    assert first[:5] == ["[CLS]", "it", "'", "s", "a"] and first[-2:] == [".", "[SEP]"]
    check_framing(dev, vocab, 31, pair=False)
    # test: no labels, the GLUE index kept for the submission file
    assert "labels" not in test.column_names
    assert test.column("index").to_pylist() == list(range(test_count))
    assert decode(vocab, test.column("input_ids")[0].as_py())[1:3] == ["uneasy", "mis"]
    manifest = ShardSet(out / "test").manifest
    assert manifest["kind"] == "glue" and manifest["counts"]["labelled"] is False
    options = manifest["options"]
    assert options["task"] == "SST-2" and options["split"] == "test" and options["max_seq_length"] == 31
    assert options["num_labels"] == 2 and options["do_lower_case"] is True and not options["regression"]


def test_sst2_train_slice_and_rerun_is_a_no_op(cli, tmp_path, data_dir, vocab_file, vocab):
    lines = (data_dir / "glue" / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("\n".join(lines[:301]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    prepare(cli, vocab_file, "sst2", folder, out, "--max-seq-length", 9)
    train = rows(out / "train")
    assert train.num_rows == 300 and [p.name for p in out.iterdir()] == ["train"]
    check_framing(train, vocab, 9, pair=False)
    counts = ShardSet(out / "train").manifest["counts"]
    tokenizer = vocab.tokenizer()
    lengths = [len(tokenizer.encode(line.split("\t")[0]).ids) for line in lines[1:301]]
    assert counts["truncated"] == sum(n > 9 - 2 for n in lengths) > 0
    shard = next((out / "train").glob("*.arrow"))
    before = shard.stat().st_mtime_ns
    again = prepare(cli, vocab_file, "SST-2", folder, out, "--max-seq-length", 9)
    assert "already complete" in again.stdout and shard.stat().st_mtime_ns == before
    other = prepare(cli, vocab_file, "SST-2", folder, out, "--max-seq-length", 10, ok=False)
    assert other.exit_code == 2 and "max_seq_length=9" in other.stderr


def test_mnli_dev_matched_pairs(glue_out, data_dir, vocab):
    out = glue_out("MNLI", "--max-seq-length", 64)
    table = rows(out / "dev_matched")
    records = jsonl_records(data_dir / "glue" / "MNLI" / "dev_matched.jsonl")
    assert table.num_rows == len(records)
    ids, segments = table.column("input_ids")[0].as_py(), table.column("segment_ids")[0].as_py()
    text = " ".join(decode(vocab, ids))
    assert (
        text == "[CLS] the new rights are nice enough [SEP] everyone really likes the newest benefits [SEP]"
    )
    assert segments == [0] * 8 + [1] * 7
    manifest = ShardSet(out / "dev_matched").manifest
    assert manifest["options"]["label_names"] == ["contradiction", "entailment", "neutral"]
    assert manifest["counts"]["label_counts"] == Counter(record["label"] for record in records)
    assert table.column("labels")[0].as_py() == 2  # neutral
    check_framing(table, vocab, 64, pair=True)


def test_pairs_are_cut_longest_first(glue_out, data_dir, vocab):
    out = glue_out("MNLI", "--max-seq-length", 17)
    table = rows(out / "dev_matched")
    records = jsonl_records(data_dir / "glue" / "MNLI" / "dev_matched.jsonl")
    tokenizer = vocab.tokenizer()
    cut = 0
    for record, ids in zip(records, table.column("input_ids").to_pylist(), strict=True):
        a = tokenizer.encode(record["premise"]).ids
        b = tokenizer.encode(record["hypothesis"]).ids
        ka, kb = bert_truncate(a, b, 17 - 3)
        assert ids == [vocab.cls_id, *ka, vocab.sep_id, *kb, vocab.sep_id]
        cut += len(ka) + len(kb) < len(a) + len(b)
    assert cut == ShardSet(out / "dev_matched").manifest["counts"]["truncated"] > 0
    check_framing(table, vocab, 17, pair=True)


def test_stsb_csv_float_labels(glue_out, data_dir, vocab):
    out = glue_out("STS-B", "--max-seq-length", 23)
    files = {
        split: tsv_rows(data_dir / "glue" / "STS-B" / f"sts-{split}.csv", header=False) for split in SPLITS
    }
    assert {split: rows(out / split).num_rows for split in SPLITS} == {
        split: len(lines)
        for split, lines in files.items()  # rows with licence fields included
    }
    dev = rows(out / "dev")
    assert dev.schema.field("labels").type == pa.float32()
    assert dev.column("labels").to_pylist() == pytest.approx([float(row[4]) for row in files["dev"]])
    assert ShardSet(out / "dev").manifest["options"]["regression"] is True
    check_framing(dev, vocab, 23, pair=True)


def test_rte_jsonl(glue_out, data_dir, vocab):
    out = glue_out("RTE", "--max-seq-length", 33)
    train, dev, test = (rows(out / split) for split in SPLITS)
    files = {
        split: jsonl_records(data_dir / "glue" / "RTE" / f"{split}.jsonl")
        for split in ("train", "val", "test")
    }
    assert (train.num_rows, dev.num_rows, test.num_rows) == tuple(map(len, files.values()))
    assert ShardSet(out / "train").manifest["counts"]["label_counts"] == Counter(
        record["label"] for record in files["train"]
    )
    assert "labels" not in test.column_names
    assert test.column("index").to_pylist() == list(range(len(files["test"])))
    check_framing(train, vocab, 33, pair=True)


def test_cola_raw(glue_out, data_dir, vocab):
    out = glue_out("CoLA", "--max-seq-length", 19)
    raw = {name: tsv_rows(data_dir / "glue" / "CoLA" / "raw" / f"{name}.tsv", header=False)
           for name in ("in_domain_train", "in_domain_dev", "out_of_domain_dev")}  # fmt: skip
    in_domain, out_of_domain = len(raw["in_domain_dev"]), len(raw["out_of_domain_dev"])
    sizes = {p.name: rows(p).num_rows for p in sorted(out.iterdir())}
    assert sizes == {
        "dev": in_domain + out_of_domain,
        "dev_in_domain": in_domain,
        "dev_out_of_domain": out_of_domain,
        "train": len(raw["in_domain_train"]),
    }
    labels = ShardSet(out / "train").manifest["counts"]["label_counts"]
    assert labels == Counter(row[1] for row in raw["in_domain_train"])
    dev = rows(out / "dev")
    assert dev.column("index").to_pylist() == list(range(in_domain + out_of_domain))
    assert (
        dev.column("input_ids").to_pylist()[in_domain:]
        == rows(out / "dev_out_of_domain").column("input_ids").to_pylist()
    )
    check_framing(dev, vocab, 19, pair=False)


@pytest.mark.full_data("glue/SST-2", "glue/MNLI", "glue/STS-B", "glue/RTE", "glue/CoLA")
def test_published_sizes_and_labels(glue_out):
    """The whole files give the published split sizes and label counts."""

    def size(task: str, split: str, *extra: object) -> int:
        return rows(glue_out(task, *extra) / split).num_rows

    def labels(task: str, split: str, *extra: object) -> dict[str, int]:
        return ShardSet(glue_out(task, *extra) / split).manifest["counts"]["label_counts"]

    sst2 = ("--splits", "dev,test", "--max-seq-length", 31)
    assert (size("SST-2", "dev", *sst2), size("SST-2", "test", *sst2)) == (872, 1821)
    assert rows(glue_out("SST-2", *sst2) / "dev").column("labels").to_pylist().count(1) == 444
    assert size("MNLI", "dev_matched", "--max-seq-length", 64) == 9815
    assert labels("MNLI", "dev_matched", "--max-seq-length", 64) == {
        "contradiction": 3213,
        "entailment": 3479,
        "neutral": 3123,
    }
    assert [size("STS-B", split, "--max-seq-length", 23) for split in SPLITS] == [5749, 1500, 1379]
    assert [size("RTE", split, "--max-seq-length", 33) for split in SPLITS] == [2490, 277, 3000]
    assert labels("RTE", "train", "--max-seq-length", 33) == {"entailment": 1249, "not_entailment": 1241}
    cola = [
        size("CoLA", split, "--max-seq-length", 19)
        for split in ("train", "dev_in_domain", "dev_out_of_domain")
    ]
    assert cola == [8551, 527, 516]
    assert labels("CoLA", "train", "--max-seq-length", 19) == {"0": 2528, "1": 6023}


def test_shipped_sst2_config(cli, monkeypatch, tmp_path, data_dir, vocab_file):
    monkeypatch.chdir(REPO)  # the config's paths are relative to the repository root
    out = tmp_path / "sst2"
    cli("prepare", "glue", "--config", "configs/glue/prepare-glue-sst2.yaml", "--splits", "dev",
        "--output-dir", out, "--input", data_dir / "glue" / "SST-2", "--vocab-file", vocab_file)  # fmt: skip
    manifest = ShardSet(out / "dev").manifest
    assert manifest["options"]["max_seq_length"] == 128 and manifest["options"]["do_lower_case"] is True


def write_tsv(folder: Path, name: str, *lines: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def failure(cli, vocab_file, task, folder, out, *extra) -> str:
    result = prepare(cli, vocab_file, task, folder, out, *extra, ok=False)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def test_wrong_column_count_names_file_and_line(cli, tmp_path, vocab_file):
    folder = write_tsv(tmp_path / "in", "dev.tsv", "sentence\tlabel", "a fine film \t1", "too\tmany\tfields")
    message = failure(cli, vocab_file, "SST-2", folder, tmp_path / "out")
    assert f"{folder / 'dev.tsv'}:3: 3 tab-separated fields, expected 2" in message
    assert not (tmp_path / "out" / "dev").exists() or not any((tmp_path / "out" / "dev").glob("*.arrow"))


def test_text_that_is_not_utf8_names_file_line_and_byte(cli, tmp_path, vocab_file):
    folder = write_tsv(tmp_path / "in", "dev.tsv", "sentence\tlabel", "a fine film \t1")
    (folder / "dev.tsv").write_bytes((folder / "dev.tsv").read_bytes() + b"caf\xe9 noir \t0\n")
    message = failure(cli, vocab_file, "SST-2", folder, tmp_path / "out")
    assert message == (
        f"error: {folder / 'dev.tsv'}:3: not valid UTF-8 (byte 0xe9 at column 4); re-encode the file as UTF-8"
    )


def test_label_outside_the_set(cli, tmp_path, vocab_file):
    folder = write_tsv(tmp_path / "in", "dev.tsv", "sentence\tlabel", "a fine film \t1", "so so \t2")
    message = failure(cli, vocab_file, "SST-2", folder, tmp_path / "out")
    assert f"{folder / 'dev.tsv'}:3: label '2' is not one of SST-2's labels 0, 1" in message
    sts = write_tsv(tmp_path / "sts", "sts-dev.csv", "g\tf\t2012\t0001\t7.5\tA man.\tA man.")
    message = failure(cli, vocab_file, "STS-B", sts, tmp_path / "out-sts")
    assert f"{sts / 'sts-dev.csv'}:1: label 7.5 is outside STS-B's range 0 to 5" in message


def test_unknown_task_lists_the_valid_ones(cli, tmp_path, vocab_file, data_dir):
    message = failure(cli, vocab_file, "SST-3", data_dir / "glue" / "SST-2", tmp_path / "out")
    assert "'SST-3'" in message
    assert "CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI" in message


def test_folder_without_split_files(cli, tmp_path, vocab_file, data_dir):
    (tmp_path / "empty").mkdir()
    message = failure(cli, vocab_file, "QNLI", tmp_path / "empty", tmp_path / "out")
    assert "no QNLI split file there" in message and "dev.tsv" in message
    message = failure(cli, vocab_file, "QNLI", data_dir / "glue" / "SST-2", tmp_path / "out")
    assert "train.tsv:1: no 'question' column in the header" in message
    message = failure(
        cli, vocab_file, "SST-2", data_dir / "glue" / "SST-2", tmp_path / "o", "--splits", "val"
    )
    assert "'val' is not a SST-2 split" in message
