"""`prepare mlm`: metadata-listed text files to shuffled MLM-only Arrow shards.

With ``--num-shards N --shard-index I`` (one run per machine) a run takes the input files i with
i % N == I and writes its own folder of shards; a file's examples are the same whichever run makes them,
and `linctl prepare merge-manifests` describes the N folders as one.

Two resumable phases. (1) Each input file becomes a work file of examples, in parallel over files; its
random choices come from its own seeded stream, so the result does not depend on ``--workers``.
(2) One seeded permutation of all examples deals them into ``--num-output-files`` shards. Every file is
renamed into place when complete, so a killed run keeps what it finished and a rerun does only the rest.
"""

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from linctl.atomic import write_text_atomic
from linctl.data.inputs import iter_documents, read_metadata, separator_line
from linctl.data.manifest import claimed_output_dir
from linctl.data.mlm import Masking, Windows, frame
from linctl.data.options import MlmOptions
from linctl.data.ragged import Ragged
from linctl.data.shards import ROWS_PER_BATCH, open_writer, read_table, shard_name, table_of, write_table
from linctl.data.tokenizer import WordPieceVocab, check_casing, load_vocab
from linctl.data.workers import worker_pool
from linctl.errors import InputError
from linctl.progress import progress

KIND = "mlm"
WORK = ".work"
ENCODE_CHARS = 1 << 22  # text handed to the Rust tokenizer per call: large enough to keep every core busy
RUN_ONLY = ("workers", "output_dir")  # options that do not change the shards
SLICE = ("shard_index", "num_shards")  # which of several machines' runs over the input files this is


def prepare_mlm(options: MlmOptions) -> dict[str, Any]:
    """Write MLM-only shards for ``options``; return the summary rows."""
    start = time.perf_counter()
    # Absolute paths in the manifest: readers (MlmCollator.for_shards) find the vocabulary from anywhere.
    options = options.model_copy(
        update={
            "vocab_file": options.vocab_file.resolve(),
            "metadata_files": [p.resolve() for p in options.metadata_files],
        }
    )
    vocab = _vocab(options.vocab_file, options.do_lower_case)
    if options.allow_cross_document_examples:
        vocab.id(options.document_separator_token)
    files = read_metadata(options.metadata_files, options.input_files_prefix)
    mine = [(i, path) for i, path in enumerate(files) if i % options.num_shards == options.shard_index]
    if not mine:
        raise InputError(
            f"--shard-index {options.shard_index} --num-shards {options.num_shards}: the metadata files list "
            f"{len(files)} input files, so this slice has none; use --num-shards {len(files)} at most"
        )
    out = Path(options.output_dir)
    owned = [f"{options.name}-*.arrow"]
    # a run over all the files records no slice: its manifest is the one it was before slices existed
    recorded = options.model_dump(exclude=set(SLICE) if options.num_shards == 1 else set())
    with claimed_output_dir(out, KIND, recorded, owned, RUN_ONLY, scratch=[WORK]) as claim:
        if claim.done is not None:
            shutil.rmtree(out / WORK, ignore_errors=True)  # left if a run was killed right after its manifest
            return {
                **_summary(claim.done["counts"]),
                "seconds": round(time.perf_counter() - start, 2),
                "status": "already complete",
            }
        work = out / WORK
        work.mkdir(exist_ok=True)
        stats = _build_work_files(options, mine, work)
        check_casing(vocab, options.do_lower_case, stats["unk"] / max(stats["tokens"], 1))
        if stats["examples"] == 0:
            raise InputError(f"--metadata-files {options.metadata_files[0]}: the listed files hold no text")
        names, per_shard = _deal_into_shards(options, sorted(work.glob("*.arrow")), out)
        manifest = claim.finish({**stats, "shards": dict(zip(names, per_shard, strict=True))}, names)
        shutil.rmtree(work)
    seconds = time.perf_counter() - start
    return {
        **_summary(manifest["counts"]),
        "seconds": round(seconds, 2),
        "tokens/s": round(stats["tokens"] / seconds),
    }


def _summary(counts: dict[str, Any]) -> dict[str, Any]:
    tokens = max(counts["tokens"], 1)
    return {
        "documents": counts["documents"],
        "sentences": counts["sentences"],
        "tokens": counts["tokens"],
        "[UNK] rate": f"{counts['unk'] / tokens:.3%}",
        "examples": counts["examples"],
        "example tokens": counts["example_tokens"],
        "masked positions": counts["masked_positions"],
        "shards": len(counts["shards"]),
    }


def _build_work_files(options: MlmOptions, files: list[tuple[int, Path]], work: Path) -> Counter:
    """Phase 1: one work file of examples per input file (by its index in the metadata files), skipping
    those a killed run finished."""
    stats: Counter = Counter()
    todo = []
    for i, path in files:
        finished = work / f"{i:05d}.json"
        if finished.exists():
            stats.update(json.loads(finished.read_text()))
        else:
            todo.append((i, path))
    pool_size = min(options.workers, len(todo))
    with progress("examples", total=sum(p.stat().st_size for _, p in todo)) as advance, ExitStack() as stack:
        if pool_size <= 1:
            results = (_build_work_file(options, i, path, work) for i, path in todo)
        else:
            # Spawned workers share the cores: each gives its Rust tokenizer its share of threads.
            threads = max(1, options.workers // pool_size)
            pool = stack.enter_context(
                worker_pool(pool_size, initializer=_limit_threads, initargs=(threads,))
            )
            futures = [pool.submit(_build_work_file, options, i, path, work) for i, path in todo]
            results = (future.result() for future in futures)
        for (_, path), result in zip(todo, results, strict=True):
            stats.update(result)
            advance(path.stat().st_size)
    return stats


def _limit_threads(threads: int) -> None:
    os.environ["RAYON_NUM_THREADS"] = str(threads)


@cache
def _vocab(path: Path, lowercase: bool) -> WordPieceVocab:
    return load_vocab(path, lowercase)


def _build_work_file(options: MlmOptions, index: int, path: Path, work: Path) -> dict[str, int]:
    """Turn input file ``index`` into ``work/{index}.arrow`` and its counts ``work/{index}.json``."""
    vocab = _vocab(options.vocab_file, options.do_lower_case)
    separator = vocab.id(options.document_separator_token) if options.allow_cross_document_examples else None
    masking = None
    if not options.disable_masking:
        masking = Masking.for_vocab(
            vocab,
            options.masked_lm_prob,
            options.max_predictions_per_seq,
            options.mask_whole_word,
            also_excluded=[separator] if separator is not None else [],
        )
    passes = []
    for dupe in range(options.dupe_factor):
        rng = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(0, index, dupe)))
        windows = Windows(
            options.max_body, options.overlap, options.short_seq_prob, options.min_short, rng, separator
        )
        passes.append(windows)
    stats = Counter(examples=0, example_tokens=0, masked_positions=0)
    features = ["input_ids"] if masking is None else ["input_ids", "masked_lm_positions", "masked_lm_ids"]
    schema = pa.schema([(key, pa.list_(pa.int32())) for key in features])
    with open_writer(work / f"{index:05d}.arrow", schema) as writer:

        def emit(windows: Windows, bodies: list[np.ndarray]) -> None:
            if not bodies:
                return
            examples = frame(bodies, vocab.cls_id, vocab.sep_id)
            columns = {"input_ids": examples}
            if masking is not None:
                masked = masking(examples, windows.rng)
                columns = {
                    "input_ids": masked.input_ids,
                    "masked_lm_positions": masked.positions,
                    "masked_lm_ids": Ragged(masked.labels, masked.positions.offsets),
                }
                stats["masked_positions"] += len(masked.labels)
            stats["examples"] += len(examples)
            stats["example_tokens"] += len(examples.values)
            writer.write_table(table_of(columns), max_chunksize=ROWS_PER_BATCH)

        for docs in _token_buffers(options, vocab, path, stats):
            for windows in passes:
                emit(windows, windows.cut(docs))
        for windows in passes:
            emit(windows, windows.flush())
    write_text_atomic(work / f"{index:05d}.json", json.dumps(dict(stats)))
    return dict(stats)


def _token_buffers(
    options: MlmOptions, vocab: WordPieceVocab, path: Path, stats: Counter
) -> Iterator[list[np.ndarray]]:
    """Yield the file's documents as token arrays, at least ``buffer_size`` tokens at a time."""
    tokenizer = vocab.tokenizer()
    sentencizer = None if options.single_sentence_per_line else _sentencizer(options.spacy_model)
    if sentencizer is not None:
        from linctl.data.sentences import split_sentences
    separator = (
        separator_line(options.multiple_docs_separator) if options.multiple_docs_in_single_file else None
    )
    buffer: list[np.ndarray] = []
    held = 0
    texts: list[str] = []
    chars = 0

    def encode() -> None:
        nonlocal held
        for encoding in tokenizer.encode_batch(texts, add_special_tokens=False):
            ids = np.asarray(encoding.ids, dtype=np.int32)
            stats["unk"] += int(np.count_nonzero(ids == vocab.unk_id))
            stats["tokens"] += len(ids)
            if len(ids):
                buffer.append(ids)
                held += len(ids)
        texts.clear()

    for lines in iter_documents(path, separator):
        stats["documents"] += 1
        if sentencizer is None:
            stats["sentences"] += len(lines)
        else:
            # MLM-only examples run across sentence ends, so the split changes the count, not the tokens.
            stats["sentences"] += sum(len(s) for s in split_sentences(sentencizer, lines))
        texts.append("\n".join(lines))
        chars += len(texts[-1])
        if chars >= ENCODE_CHARS:
            encode()
            chars = 0
            if held >= options.buffer_size:
                yield buffer
                buffer, held = [], 0
    encode()
    if buffer:
        yield buffer


@cache
def _sentencizer(name: str):
    from linctl.data.sentences import load_sentencizer

    return load_sentencizer(name)


def _deal_into_shards(options: MlmOptions, work_files: list[Path], out: Path) -> tuple[list[str], list[int]]:
    """Phase 2: deal a seeded permutation of all examples into shards, skipping finished shards."""
    table = pa.concat_tables([read_table(p) for p in work_files])
    n = options.num_output_files
    order = np.random.default_rng(np.random.SeedSequence(options.seed, spawn_key=(1,))).permutation(
        table.num_rows
    )
    names = [shard_name(options.name, i, n) for i in range(n)]
    with progress("shards", total=n) as advance:
        for i, name in enumerate(names):
            if not (out / name).exists():
                write_table(out / name, table.take(pa.array(order[i::n])))
            advance()
    return names, [len(order[i::n]) for i in range(n)]
