"""GLUE tasks as their publishers lay them out: the task table, where each split lives, and readers.

Four layouts are read. ``glue``: the official GLUE TSVs (``train.tsv``, ``dev.tsv``, ``test.tsv``; MNLI
``dev_matched.tsv`` …), split on tabs with no quoting, columns found by their header names (CoLA's
train/dev have no header: source, label, notation, sentence). ``sts-csv``: the STS Benchmark release
(``sts-train.csv`` …: genre, file, year, id, score, sentence1, sentence2, then optional licence
fields, which are ignored as its readme says). ``jsonl``: SuperGLUE RTE (premise/hypothesis/label/idx)
and MultiNLI (premise/hypothesis/label, or the original sentence1/sentence2/gold_label, whose
unlabelled ``-`` rows GLUE drops and so do we). ``cola-raw``: CoLA's public release (``raw/*.tsv``).
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from linctl.data.sources.textfile import read_lines
from linctl.errors import InputError
from linctl.metrics.glue import folded

FORMATS = ("glue", "sts-csv", "jsonl", "cola-raw")
STS_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class GlueTask:
    """A GLUE task: its inputs, its labels (None: regression) and the GLUE TSV column names."""

    name: str
    pair: bool
    labels: tuple[str, ...] | None
    text_a: str
    text_b: str | None
    label: str
    index: str = "index"
    splits: tuple[str, ...] = ("train", "dev", "test")

    @property
    def regression(self) -> bool:
        return self.labels is None


MNLI_SPLITS = ("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched")
NLI = ("contradiction", "entailment", "neutral")  # the order of BERT's run_classifier.py
BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")

TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("CoLA", False, BINARY, "sentence", None, "label"),
        GlueTask("SST-2", False, BINARY, "sentence", None, "label"),
        GlueTask("MRPC", True, BINARY, "#1 String", "#2 String", "Quality"),
        GlueTask("STS-B", True, None, "sentence1", "sentence2", "score"),
        GlueTask("QQP", True, BINARY, "question1", "question2", "is_duplicate", index="id"),
        GlueTask("MNLI", True, NLI, "sentence1", "sentence2", "gold_label", splits=MNLI_SPLITS),
        GlueTask("QNLI", True, ENTAILMENT, "question", "sentence", "label"),
        GlueTask("RTE", True, ENTAILMENT, "sentence1", "sentence2", "label"),
        GlueTask("WNLI", True, BINARY, "sentence1", "sentence2", "label"),
    )
}
STS_COLUMNS = 7  # STS Benchmark: genre, file, year, id, score, sentence1, sentence2 [, licence fields]


def task_named(name: str) -> GlueTask:
    """Return the task called ``name`` (any case; ``sst2``, ``sts_b`` work), or raise ValueError."""
    wanted = folded(name)
    for task in TASKS.values():
        if folded(task.name) == wanted:
            return task
    raise ValueError(f"unknown GLUE task; choose one of {', '.join(TASKS)}")


class Example(NamedTuple):
    """One example: its texts, its label as written (None in test sets), its GLUE index and origin."""

    text_a: str
    text_b: str | None
    label: str | None
    index: int
    path: Path
    line: int


def split_files(task: GlueTask, fmt: str) -> dict[str, tuple[str, ...]]:
    """Return the files (relative to --input) of each split of ``task`` in layout ``fmt``; {} if none."""
    if fmt == "glue":
        return {split: (f"{split}.tsv",) for split in task.splits}
    if fmt == "sts-csv" and task.name == "STS-B":
        return {split: (f"sts-{split}.csv",) for split in task.splits}
    if fmt == "jsonl" and task.name == "RTE":
        return {"train": ("train.jsonl",), "dev": ("val.jsonl",), "test": ("test.jsonl",)}
    if fmt == "jsonl" and task.name == "MNLI":
        return {split: (f"{split}.jsonl",) for split in task.splits}
    if fmt == "cola-raw" and task.name == "CoLA":
        # GLUE's dev (1043) is both dev files; each is kept on its own too, for per-domain numbers.
        return {
            "train": ("raw/in_domain_train.tsv",),
            "dev": ("raw/in_domain_dev.tsv", "raw/out_of_domain_dev.tsv"),
            "dev_in_domain": ("raw/in_domain_dev.tsv",),
            "dev_out_of_domain": ("raw/out_of_domain_dev.tsv",),
        }
    return {}


def find_splits(task: GlueTask, folder: Path, fmt: str = "auto") -> tuple[str, dict[str, list[Path]]]:
    """Return the layout of ``folder`` and the files of each split present there.

    With ``fmt="auto"`` the layout is the one whose split files are there; two at once is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--input {folder}: not a folder")
    found: dict[str, dict[str, list[Path]]] = {}
    looked: list[str] = []
    for layout in FORMATS if fmt == "auto" else (fmt,):
        files = split_files(task, layout)
        looked += [name for names in files.values() for name in names if name not in looked]
        present = {
            split: [folder / name for name in names]
            for split, names in files.items()
            if all((folder / name).is_file() for name in names)
        }
        if present:
            found[layout] = present
    if not found:
        if fmt != "auto" and not split_files(task, fmt):
            layouts = [f for f in FORMATS if split_files(task, f)]
            raise InputError(
                f"--format {fmt}: holds no {task.name} data; {task.name} comes as {', '.join(layouts)}"
            )
        raise InputError(f"--input {folder}: no {task.name} split file there; looked for {', '.join(looked)}")
    if len(found) > 1:
        raise InputError(
            f"--input {folder}: holds {task.name} files of several layouts ({', '.join(found)}); "
            "pick one with --format"
        )
    return next(iter(found.items()))


def read_examples(task: GlueTask, fmt: str, paths: list[Path]) -> Iterator[Example]:
    """Yield the examples of one split, read from ``paths`` in order, in layout ``fmt``."""
    reader = {"sts-csv": _read_sts_csv, "jsonl": _read_jsonl}.get(fmt, _read_glue_tsv)
    offset = 0
    for path in paths:
        count = 0
        for example in reader(task, path):
            # A split made of several files (CoLA's dev) numbers its examples on, as GLUE's dev.tsv does.
            yield example._replace(index=example.index + offset)
            count += 1
        offset += count


def label_id(task: GlueTask, example: Example) -> int | float:
    """Return the example's label as a class id (float score for STS-B), or raise InputError."""
    where = f"{example.path}:{example.line}"
    raw = (example.label or "").strip()
    if task.labels is None:
        try:
            score = float(raw)
        except ValueError:
            raise InputError(f"{where}: label {raw!r} is not a number; STS-B scores are 0 to 5") from None
        if not STS_RANGE[0] <= score <= STS_RANGE[1]:
            raise InputError(f"{where}: label {score} is outside STS-B's range 0 to 5")
        return score
    if raw not in task.labels:
        raise InputError(
            f"{where}: label {raw!r} is not one of {task.name}'s labels {', '.join(task.labels)}"
        )
    return task.labels.index(raw)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) of a UTF-8 file split on ``\\n`` only: GLUE text may hold a lone ``\\r``."""
    for lineno, line in enumerate(read_lines(path), 1):
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # GLUE's MRPC files start with a byte-order mark
        line = line.removesuffix("\n").removesuffix("\r")
        if line:
            yield lineno, line


def _read_glue_tsv(task: GlueTask, path: Path) -> Iterator[Example]:
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        return
    header = first[1].split("\t")
    if task.text_a in header:
        columns = {name: i for i, name in enumerate(header)}
        rows: Iterator[tuple[int, str]] = lines
        if task.text_b is not None and task.text_b not in columns:
            raise InputError(f"{path}:1: header lacks {task.text_b!r}; {task.name} needs {task.text_b!r}")
        a, b = columns[task.text_a], columns.get(task.text_b or "")
        label, index = columns.get(task.label), columns.get(task.index)
    elif task.name == "CoLA":
        header, rows = ["source", "label", "notation", "sentence"], _chain(first, lines)
        a, b, label, index = 3, None, 1, None
    else:
        raise InputError(
            f"{path}:1: no {task.text_a!r} column in the header; is this {task.name}'s GLUE TSV?"
        )
    width = len(header)
    for row, (lineno, line) in enumerate(rows):
        fields = line.split("\t")
        if len(fields) != width:
            raise InputError(
                f"{path}:{lineno}: {len(fields)} tab-separated fields, expected {width} ({', '.join(header)})"
            )
        yield Example(
            text_a=fields[a],
            text_b=fields[b] if b is not None else None,
            label=fields[label] if label is not None else None,
            index=_index(fields[index], path, lineno) if index is not None else row,
            path=path,
            line=lineno,
        )


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _index(text: str, path: Path, lineno: int) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{path}:{lineno}: index {text!r} is not an integer") from None


def _read_sts_csv(task: GlueTask, path: Path) -> Iterator[Example]:
    for row, (lineno, line) in enumerate(_lines(path)):
        fields = line.split("\t")
        if len(fields) < STS_COLUMNS:
            raise InputError(
                f"{path}:{lineno}: {len(fields)} tab-separated fields, expected {STS_COLUMNS} "
                "(genre, filename, year, id, score, sentence1, sentence2) and optional licence fields"
            )
        yield Example(fields[5], fields[6], fields[4], row, path, lineno)


def _read_jsonl(task: GlueTask, path: Path) -> Iterator[Example]:
    row = 0
    for lineno, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{lineno}: not a JSON object ({exc})") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        a = record.get("premise", record.get("sentence1"))
        b = record.get("hypothesis", record.get("sentence2"))
        if not isinstance(a, str) or not isinstance(b, str):
            raise InputError(
                f"{path}:{lineno}: expected text under premise/hypothesis (or sentence1/sentence2), "
                f"found keys {', '.join(record)}"
            )
        label = record.get("label", record.get("gold_label"))
        if label == "-" and "gold_label" in record:
            continue  # MultiNLI pairs without annotator agreement: not part of GLUE
        index = record.get("idx", row)
        if not isinstance(index, int):
            raise InputError(f"{path}:{lineno}: idx {index!r} is not an integer")
        yield Example(a, b, None if label is None else str(label), index, path, lineno)
        row += 1
