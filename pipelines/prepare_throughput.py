"""Throughput of `linctl prepare mlm` end to end, next to the raw `tokenizers` batch-encoding rate.

Both read the same files the same way (documents of one-sentence lines, joined); the raw rate times only
`Tokenizer.encode_batch`, the end-to-end rate times the whole `linctl prepare mlm` command (start-up,
reading, tokenizing, cutting, masking, writing, shuffling into shards, checksums). Prints a Markdown table.

    python pipelines/prepare_throughput.py METADATA VOCAB OUT_DIR [--lower]

Each figure is the best of three runs.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from linctl.data.inputs import iter_documents, read_metadata
from linctl.data.mlm_shards import ENCODE_CHARS
from linctl.data.tokenizer import load_vocab

REPEATS = 3  # each figure is the best of this many runs: the least disturbed by the rest of the machine


def raw_rate(metadata: Path, vocab_file: Path, lower: bool) -> tuple[int, float]:
    """Return (tokens, seconds) of encode_batch over the listed files, in the pipeline's chunks."""
    tokenizer = load_vocab(vocab_file, lower).tokenizer()
    chunks, chunk, chars = [], [], 0
    for path in read_metadata([metadata]):
        for lines in iter_documents(path, ""):
            chunk.append("\n".join(lines))
            chars += len(chunk[-1])
            if chars >= ENCODE_CHARS:
                chunks.append(chunk)
                chunk, chars = [], 0
    chunks.append(chunk)
    tokenizer.encode_batch(chunks[0][:100], add_special_tokens=False)  # start the thread pool
    tokens, start = 0, time.perf_counter()
    for texts in chunks:
        tokens += sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False))
    return tokens, time.perf_counter() - start


def end_to_end(metadata: Path, vocab_file: Path, lower: bool, out: Path, extra: list[str]) -> float:
    """Return the wall seconds of one `linctl prepare mlm` run into a fresh folder."""
    args = [sys.executable, "-m", "linctl", "prepare", "mlm", "--metadata-files", str(metadata)]
    args += ["--vocab-file", str(vocab_file), "--output-dir", str(out), "--multiple-docs-in-single-file"]
    args += ["--single-sentence-per-line", *(["--do-lower-case"] if lower else []), *extra]
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metadata", type=Path)
    parser.add_argument("vocab", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--lower", action="store_true")
    args = parser.parse_args()
    tokens, seconds = min(
        (raw_rate(args.metadata, args.vocab, args.lower) for _ in range(REPEATS)), key=lambda r: r[1]
    )
    raw = tokens / seconds
    runs = {
        "dynamic (unmasked), msl 512, dupe 1": [
            "--disable-masking",
            "--max-seq-length",
            "512",
            "--dupe-factor",
            "1",
        ],
        "static, msl 128, dupe 1": ["--max-seq-length", "128", "--dupe-factor", "1"],
        "static, msl 128, dupe 10 (BERT default)": ["--max-seq-length", "128", "--dupe-factor", "10"],
    }
    print(f"Input: {tokens:,} tokens; machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores")
    print()
    print("| what | seconds | tokens/s | share of raw rate |")
    print("|---|---:|---:|---:|")
    print(f"| raw `tokenizers` encode_batch | {seconds:.2f} | {raw:,.0f} | 100% |")
    for i, (name, extra) in enumerate(runs.items()):
        wall = min(
            end_to_end(args.metadata, args.vocab, args.lower, args.out / f"run{i}-{k}", extra)
            for k in range(REPEATS)
        )
        rate = tokens / wall
        print(f"| `prepare mlm` end to end: {name} | {wall:.2f} | {rate:,.0f} | {rate / raw:.0%} |")


if __name__ == "__main__":
    main()
