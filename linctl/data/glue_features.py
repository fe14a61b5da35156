"""`prepare glue`: GLUE examples to BERT classifier features, one Arrow shard folder per split.

Features follow the Cerebras BERT classifier (and Google's run_classifier.py): ``[CLS] A [SEP]`` or
``[CLS] A [SEP] B [SEP]``, ``segment_ids`` 0 up to the first ``[SEP]`` and 1 after it, a pair cut
longest-first to ``max_seq_length`` tokens (special tokens included). Columns: ``input_ids`` and
``segment_ids`` (list<int32>, unpadded), ``labels`` (int64 class ids, float32 for STS-B; absent in
test sets without labels) and ``index`` (the example's GLUE index, for submission files).
"""

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from linctl.data.manifest import MANIFEST, PENDING, claimed_output_dir
from linctl.data.options import GlueOptions
from linctl.data.ragged import Ragged
from linctl.data.shards import shard_name, write_table
from linctl.data.sources.glue import Example, GlueTask, find_splits, label_id, read_examples, task_named
from linctl.data.tokenizer import WordPieceVocab, check_casing, load_vocab
from linctl.errors import ConfigError, InputError, OutputError

KIND = "glue"
SHARD = shard_name("examples", 0, 1)


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Return the lengths BERT's longest-first truncation leaves of a pair within ``budget`` tokens.

    The same as popping a token off the longer side (off B on a tie) until the pair fits.
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    short = min(len_a, len_b)
    if 2 * short <= budget:  # only the longer side is cut
        return (budget - short, short) if len_a > len_b else (short, budget - short)
    return (budget + 1) // 2, budget // 2  # both cut; ties pop B first, so A keeps the odd token


def frame(
    a: list[int], b: list[int] | None, max_seq_length: int, cls_id: int, sep_id: int
) -> tuple[list[int], list[int], bool]:
    """Return (input_ids, segment_ids, truncated) of ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]``."""
    if b is None:
        keep = min(len(a), max_seq_length - 2)
        ids = [cls_id, *a[:keep], sep_id]
        return ids, [0] * len(ids), keep < len(a)
    keep_a, keep_b = truncated_lengths(len(a), len(b), max_seq_length - 3)
    first = [cls_id, *a[:keep_a], sep_id]
    ids = [*first, *b[:keep_b], sep_id]
    return ids, [0] * len(first) + [1] * (keep_b + 1), keep_a + keep_b < len(a) + len(b)


def encode(
    task: GlueTask, examples: list[Example], vocab: WordPieceVocab, max_seq_length: int
) -> tuple[pa.Table, Counter]:
    """Tokenize and frame ``examples``; return the feature table and its counts."""
    tokenizer = vocab.tokenizer()
    side_a = [e.ids for e in tokenizer.encode_batch([e.text_a for e in examples], add_special_tokens=False)]
    side_b: list[list[int] | None] = [None] * len(examples)
    if task.pair:
        texts_b = [e.text_b or "" for e in examples]
        side_b = [e.ids for e in tokenizer.encode_batch(texts_b, add_special_tokens=False)]
    stats: Counter = Counter(examples=len(examples), truncated=0, tokens=0, unk=0)
    input_ids, segment_ids = [], []
    for a, b in zip(side_a, side_b, strict=True):
        ids, segments, cut = frame(a, b, max_seq_length, vocab.cls_id, vocab.sep_id)
        input_ids.append(np.asarray(ids, dtype=np.int32))
        segment_ids.append(np.asarray(segments, dtype=np.int32))
        stats["truncated"] += cut
    ragged = Ragged.from_rows(input_ids)
    stats["tokens"] = len(ragged.values)
    stats["unk"] = int(np.count_nonzero(ragged.values == vocab.unk_id))
    stats["max_length"] = int(ragged.lengths.max(initial=0))
    columns: dict[str, pa.Array] = {
        "input_ids": ragged.to_arrow(),
        "segment_ids": Ragged.from_rows(segment_ids).to_arrow(),
    }
    if examples and all(e.label is not None for e in examples):
        labels = [label_id(task, e) for e in examples]
        columns["labels"] = pa.array(labels, pa.float32() if task.regression else pa.int64())
    columns["index"] = pa.array([e.index for e in examples], pa.int64())
    return pa.table(columns), stats


def prepare_glue(options: GlueOptions) -> dict[str, Any]:
    """Write one shard folder per split of ``options.task`` under ``options.output_dir``; return a summary."""
    start = time.perf_counter()
    task = task_named(options.task)
    options = options.model_copy(
        update={"vocab_file": options.vocab_file.resolve(), "input": options.input.resolve()}
    )
    vocab = load_vocab(options.vocab_file, options.do_lower_case)
    fmt, present = find_splits(task, options.input, options.format)
    wanted = list(present) if options.splits is None else options.splits
    unknown = [s for s in wanted if s not in task.splits and s not in present]
    if unknown:
        raise ConfigError(
            f"--splits {','.join(wanted)}: {unknown[0]!r} is not a {task.name} split; "
            f"{options.input} holds {', '.join(present)}"
        )
    missing = [s for s in wanted if s not in present]
    if missing:
        raise InputError(
            f"--splits {','.join(wanted)}: {options.input} has no {missing[0]!r} split for {task.name} "
            f"(--format {fmt}); it holds {', '.join(present)}"
        )
    check_casing(vocab, options.do_lower_case)
    out = Path(options.output_dir)
    for marker in (MANIFEST, PENDING):
        if (out / marker).exists():
            raise OutputError(f"--output-dir {out}: a shard folder itself; prepare glue writes one per split")
    # Read every split first: a malformed line stops the run before anything is written.
    examples = {split: list(read_examples(task, fmt, present[split])) for split in wanted}
    for split in wanted:
        for example in examples[split]:
            if example.label is not None:
                label_id(task, example)
    summary: dict[str, Any] = {"task": task.name, "format": fmt}
    for split in wanted:
        counts, status = _prepare_split(task, fmt, options, split, present[split], examples[split], vocab)
        truncated = f", {counts['truncated']:,} truncated" if counts["truncated"] else ""
        labelled = "" if counts["labelled"] else ", no labels"
        summary[split] = f"{counts['examples']:,} examples{truncated}{labelled}{status}"
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def split_options(task: GlueTask, fmt: str, options: GlueOptions, split: str, files: list[Path]) -> dict:
    """Return the options recorded in (and compared against) a split folder's manifest."""
    return {
        "task": task.name,
        "split": split,
        "format": fmt,
        "input_files": [str(p) for p in files],
        "vocab_file": str(options.vocab_file),
        "do_lower_case": options.do_lower_case,
        "max_seq_length": options.max_seq_length,
        "regression": task.regression,
        "num_labels": 1 if task.labels is None else len(task.labels),
        "label_names": None if task.labels is None else list(task.labels),
    }


def _prepare_split(
    task: GlueTask,
    fmt: str,
    options: GlueOptions,
    split: str,
    files: list[Path],
    examples: list[Example],
    vocab: WordPieceVocab,
) -> tuple[dict[str, Any], str]:
    folder = Path(options.output_dir) / split
    recorded = split_options(task, fmt, options, split, files)
    with claimed_output_dir(folder, KIND, recorded, owned=["*.arrow"]) as claim:
        if claim.done is not None:
            return claim.done["counts"], " (already complete)"
        table, stats = encode(task, examples, vocab, options.max_seq_length)
        counts: dict[str, Any] = {**stats, "labelled": "labels" in table.column_names}
        if "labels" in table.column_names:
            labels = table.column("labels").to_numpy()
            if task.labels is None:
                counts["label_stats"] = {"min": float(labels.min()), "max": float(labels.max())}
                counts["label_stats"]["mean"] = round(float(labels.mean()), 4)
            else:
                histogram = np.bincount(labels, minlength=len(task.labels))
                counts["label_counts"] = dict(zip(task.labels, map(int, histogram), strict=True))
        write_table(folder / SHARD, table)
        counts["shards"] = {SHARD: table.num_rows}
        claim.finish(counts, [SHARD])
    return counts, ""
