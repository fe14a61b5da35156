"""Parallel text: a split's source and target sentences, from two line-aligned files or one CSV.

Text already split into subword-nmt BPE units (``Res@@ um@@ ption``) is told by its ``@@ `` joiners
and joined back into words, and the XML escapes of the Moses tokenizer (``&apos;``, ``&quot;`` …) are
undone, so that a tokenizer trained on it, and references made of it, hold real words.
"""

import csv
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, zip_longest
from pathlib import Path

from linctl.data.sources.textfile import read_lines
from linctl.errors import InputError

SUFFIXES = ("", ".gz", ".bz2")
BPE_JOINER = re.compile(r"@@( |$)")
MOSES_ESCAPE = re.compile(r"&(apos|quot|amp|lt|gt|#124|#91|#93);")
SNIFF_LINES = 1000  # lines looked at to tell BPE units and Moses escapes


@dataclass(frozen=True)
class ParallelFiles:
    """Where a split's pairs are: two line-aligned files, or one CSV and its two columns."""

    source: Path
    target: Path | None  # None: ``source`` is a CSV
    columns: tuple[int, int] = (0, 1)

    def describe(self) -> str:
        return str(self.source) if self.target is None else f"{self.source} + {self.target}"


@dataclass(frozen=True)
class Cleaning:
    """What reading undoes: BPE joiners, Moses escapes."""

    join_bpe: bool
    unescape: bool

    def apply(self, line: str) -> str:
        line = line.strip()
        if self.join_bpe:
            line = BPE_JOINER.sub("", line)
        if self.unescape:
            line = MOSES_ESCAPE.sub(lambda m: html.unescape(m.group(0)), line)
        return line


def find_split(folder: Path, prefix: str, source: str, target: str, option: str) -> ParallelFiles:
    """Return the files of split ``prefix`` under ``folder`` (or one folder down), or raise InputError
    naming what was looked for."""
    tried: list[str] = []
    for base in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())] if folder.is_dir() else []:
        found = _files_at(base / prefix, source, target, tried)
        if found is not None:
            return found
    if not folder.is_dir():
        raise InputError(f"--input {folder}: no such folder")
    looked = (
        f"{prefix}.{source} and {prefix}.{target} (plain, .gz or .bz2), {prefix}.csv, "
        f"{prefix}.{source}-{target}.csv"
    )
    raise InputError(f"{option} {prefix}: {folder} (and its sub-folders) has no {looked}")


def _files_at(prefix: Path, source: str, target: str, tried: list[str]) -> ParallelFiles | None:
    for suffix in SUFFIXES:
        src, tgt = Path(f"{prefix}.{source}{suffix}"), Path(f"{prefix}.{target}{suffix}")
        if src.is_file() and tgt.is_file():
            return ParallelFiles(src, tgt)
    for name in (f"{prefix}.csv", f"{prefix}.{source}-{target}.csv", f"{prefix}.{target}-{source}.csv"):
        path = Path(name)
        if path.is_file():
            return ParallelFiles(path, None, _csv_columns(path, source, target))
    return None


def _csv_columns(path: Path, source: str, target: str) -> tuple[int, int]:
    """Return the columns of ``source`` and ``target`` named by the CSV's header."""
    header = next(csv.reader(islice(read_lines(path), 1)), [])
    names = [name.strip().lower() for name in header]
    missing = [lang for lang in (source, target) if lang.lower() not in names]
    if missing:
        raise InputError(
            f"{path}:1: header {','.join(header)!r} names no {missing[0]!r} column; a parallel CSV's header "
            f"names its two languages ({source},{target})"
        )
    return names.index(source.lower()), names.index(target.lower())


def sniff(files: ParallelFiles) -> Cleaning:
    """Tell from the first lines whether the text is in BPE units and whether it has Moses escapes."""
    head = [src + " " + tgt for src, tgt, _ in islice(_raw_pairs(files), SNIFF_LINES)]
    joined = sum(1 for line in head if "@@ " in line)
    return Cleaning(
        join_bpe=bool(head) and joined >= 0.1 * len(head),
        unescape=any(MOSES_ESCAPE.search(line) for line in head),
    )


def read_pairs(files: ParallelFiles, cleaning: Cleaning) -> Iterator[tuple[str, str, int]]:
    """Yield (source, target, line number) of every pair, cleaned."""
    for src, tgt, lineno in _raw_pairs(files):
        yield cleaning.apply(src), cleaning.apply(tgt), lineno


def _raw_pairs(files: ParallelFiles) -> Iterator[tuple[str, str, int]]:
    if files.target is None:
        yield from _csv_pairs(files.source, files.columns)
        return
    sources, targets = read_lines(files.source), read_lines(files.target)
    for lineno, (src, tgt) in enumerate(zip_longest(sources, targets), 1):
        if src is None or tgt is None:
            more_src, more_tgt = sum(1 for _ in sources), sum(1 for _ in targets)
            n_src = lineno - 1 + (src is not None) + more_src
            n_tgt = lineno - 1 + (tgt is not None) + more_tgt
            raise InputError(
                f"{files.source}: {n_src:,} lines but {files.target} has {n_tgt:,}; "
                "parallel files must be line-aligned"
            )
        yield src, tgt, lineno


def _csv_pairs(path: Path, columns: tuple[int, int]) -> Iterator[tuple[str, str, int]]:
    reader = csv.reader(read_lines(path))
    next(reader, None)  # the header
    for row in reader:
        if len(row) <= max(columns):
            raise InputError(
                f"{path}:{reader.line_num}: {len(row)} fields; the header names at least {max(columns) + 1}"
            )
        yield row[columns[0]], row[columns[1]], reader.line_num
