"""GLUE readers (the real files' layouts) and the classifier feature framing."""

import itertools
import json

import pytest

from linctl.data.glue_features import frame, truncated_lengths
from linctl.data.options import GlueOptions
from linctl.data.sources.glue import TASKS, find_splits, read_examples, task_named
from linctl.errors import InputError


def popped(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    while len_a + len_b > budget:
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncation_matches_bert_pop_loop():
    for len_a, len_b, budget in itertools.product(range(12), range(12), range(1, 14)):
        assert truncated_lengths(len_a, len_b, budget) == popped(len_a, len_b, budget), (len_a, len_b, budget)


def test_frame_single_and_pair():
    ids, segments, cut = frame([5, 6, 7], None, 4, cls_id=1, sep_id=2)
    assert (ids, segments, cut) == ([1, 5, 6, 2], [0, 0, 0, 0], True)
    ids, segments, cut = frame([5, 6, 7], [8, 9], 7, cls_id=1, sep_id=2)
    assert (ids, segments, cut) == ([1, 5, 6, 2, 8, 9, 2], [0, 0, 0, 0, 1, 1, 1], True)
    ids, segments, cut = frame([5], [], 5, cls_id=1, sep_id=2)
    assert (ids, segments, cut) == ([1, 5, 2, 2], [0, 0, 0, 1], False)


def test_task_names_fold_case_and_dashes():
    assert task_named("sst2").name == "SST-2" and task_named("sts_b").name == "STS-B"
    assert TASKS["MNLI"].splits[1:3] == ("dev_matched", "dev_mismatched")
    with pytest.raises(ValueError, match="CoLA, SST-2, MRPC"):
        task_named("SuperGLUE")


def test_options_take_comma_separated_splits(tmp_path):
    options = GlueOptions(
        task="rte", input=tmp_path, vocab_file=tmp_path, output_dir=tmp_path, splits="dev, test"
    )
    assert options.task == "RTE" and options.splits == ["dev", "test"]


@pytest.mark.full_data("glue/MRPC")  # not in tests/data: its licence restricts redistribution
def test_mrpc_glue_tsv_with_byte_order_mark(data_dir):
    task = TASKS["MRPC"]
    fmt, splits = find_splits(task, data_dir / "glue" / "MRPC")
    assert fmt == "glue" and set(splits) == {"train", "dev", "test"}
    train = list(read_examples(task, fmt, splits["train"]))
    assert len(train) == 3668 and train[0].label == "1" and train[0].text_a.startswith("Amrozi accused")
    test = list(read_examples(task, fmt, splits["test"]))
    assert len(test) == 1725 and test[0].label is None and test[0].index == 0 and test[0].line == 2


def test_sts_csv_ignores_licence_fields(data_dir):
    task = TASKS["STS-B"]
    fmt, splits = find_splits(task, data_dir / "glue" / "STS-B")
    lines = splits["train"][0].read_text(encoding="utf-8").splitlines()
    wide = [i for i, line in enumerate(lines) if len(line.split("\t")) > 7]
    assert wide  # the release has rows with trailing licence fields
    examples = list(read_examples(task, fmt, splits["train"]))
    assert len(examples) == len(lines)  # 5749 in the whole file
    fields = lines[wide[0]].split("\t")
    assert examples[wide[0]][:3] == (fields[5], fields[6], fields[4])


def test_original_multinli_keys_drop_unlabelled_pairs(tmp_path):
    records = [
        {"sentence1": "A man.", "sentence2": "A person.", "gold_label": "entailment"},
        {"sentence1": "A dog.", "sentence2": "A cat.", "gold_label": "-"},
        {"sentence1": "A car.", "sentence2": "No car.", "gold_label": "contradiction"},
    ]
    (tmp_path / "dev_matched.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n")
    fmt, splits = find_splits(TASKS["MNLI"], tmp_path)
    examples = list(read_examples(TASKS["MNLI"], fmt, splits["dev_matched"]))
    assert [(e.label, e.index, e.line) for e in examples] == [("entailment", 0, 1), ("contradiction", 1, 3)]


def test_two_layouts_need_a_format(tmp_path):
    (tmp_path / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n")
    (tmp_path / "val.jsonl").write_text("")
    with pytest.raises(InputError, match="several layouts"):
        find_splits(TASKS["RTE"], tmp_path)
    assert find_splits(TASKS["RTE"], tmp_path, "jsonl")[0] == "jsonl"
    with pytest.raises(InputError, match="STS-B comes as glue, sts-csv"):
        find_splits(TASKS["STS-B"], tmp_path, "jsonl")


def test_glue_tsv_columns_by_header_name(tmp_path):
    """GLUE's MNLI TSVs: 16 columns in dev (label = gold_label, the last), 10 in test (no label)."""
    dev_header = (
        "index promptID pairID genre s1b s2b s1p s2p sentence1 sentence2 label1 l2 l3 l4 l5 gold_label"
    )
    test_header = dev_header.split()[:10]
    dev_row = ["7", "1", "1n", "gov", "(", "(", "(", "(", "The rights.", "Everyone likes.", "neutral"]
    dev_row += ["neutral", "entailment", "neutral", "neutral", "neutral"]
    (tmp_path / "dev_matched.tsv").write_text(
        "\t".join(dev_header.split()) + "\n" + "\t".join(dev_row) + "\n"
    )
    test_row = ["0", "1", "1n", "gov", "(", "(", "(", "(", "A.", "B."]
    (tmp_path / "test_matched.tsv").write_text("\t".join(test_header) + "\n" + "\t".join(test_row) + "\n")
    fmt, splits = find_splits(TASKS["MNLI"], tmp_path)
    assert fmt == "glue" and set(splits) == {"dev_matched", "test_matched"}
    (dev,) = read_examples(TASKS["MNLI"], fmt, splits["dev_matched"])
    assert (dev.text_a, dev.text_b, dev.label, dev.index, dev.line) == (
        "The rights.",
        "Everyone likes.",
        "neutral",
        7,
        2,
    )
    (test,) = read_examples(TASKS["MNLI"], fmt, splits["test_matched"])
    assert (test.text_a, test.text_b, test.label, test.index) == ("A.", "B.", None, 0)
