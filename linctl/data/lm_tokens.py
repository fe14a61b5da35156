"""`prepare wikitext`: WikiText-2/103 splits to language-model token streams, one folder per split.

The stream is what fairseq trains on after ``fairseq-preprocess --only-source`` with
``--sample-break-mode none``: every line of a split, blank ones included, gives its whitespace-separated
words and then ``<eos>``, and the lines follow one another in file order. ``--tokenizer word`` maps the
words through a word vocabulary (built from train into ``OUT/vocab.txt``, see ``linctl.data.word_vocab``,
or one made earlier), words it lacks becoming ``<unk>``; ``--tokenizer wordpiece`` splits each line into
BERT WordPieces and ends it with ``[SEP]``. Each split folder is claimed and finished like every prepare
output (``linctl.data.manifest``). Its tokens are first appended to a scratch file and then written as one
Arrow record batch: memory stays bounded, and a reader maps the whole stream as one array.
"""

import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from linctl.atomic import remove_stale_tmp, sha256_file, tmp_path_for, write_text_atomic
from linctl.data.lm_stream import KIND, SCHEMA, TOKENS, VOCAB
from linctl.data.manifest import (
    MANIFEST,
    PENDING,
    claimed_output_dir,
    jsonable,
    read_manifest,
)
from linctl.data.options import WikitextOptions
from linctl.data.shards import open_writer
from linctl.data.sources.textfile import read_lines
from linctl.data.sources.wikitext import find_split_files, split_file_names
from linctl.data.tokenizer import WordPieceVocab, check_casing, load_vocab
from linctl.data.word_vocab import UNK, WordVocab, build_word_vocab, read_word_vocab
from linctl.errors import InputError, OutputError
from linctl.progress import progress

ENCODE_LINES = 1 << 14  # lines per encoder call: enough work for the Rust tokenizer's threads
Encoder = Callable[[list[str]], tuple[np.ndarray, int]]  # lines -> (ids, words out of the vocabulary)


@dataclass(frozen=True)
class Vocabulary:
    """What encoding a split needs of its vocabulary, whichever the tokenizer."""

    path: Path
    sha256: str
    size: int
    eos: tuple[str, int]  # (token, id) ending every line
    pad: tuple[str, int]
    unk_id: int
    encode: Encoder


def prepare_wikitext(options: WikitextOptions) -> dict[str, Any]:
    """Write one token-stream folder per split of ``options.input`` under ``options.output_dir``."""
    start = time.perf_counter()
    options = options.model_copy(update={"input": options.input.resolve()})
    if options.vocab_file is not None:
        options = options.model_copy(update={"vocab_file": options.vocab_file.resolve()})
    files = find_split_files(options.input)
    wanted = list(files) if options.splits is None else options.splits
    missing = [split for split in wanted if split not in files]
    if missing:
        raise InputError(
            f"--splits {','.join(wanted)}: {options.input} has no {missing[0]} split (looked for "
            f"{', '.join(split_file_names(missing[0]))}); it holds {', '.join(files)}"
        )
    out = Path(options.output_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--output-dir {out}: exists and is not a folder")
    for marker in (MANIFEST, PENDING):
        if (out / marker).exists():
            raise OutputError(
                f"--output-dir {out}: a split folder itself; prepare wikitext writes one per split"
            )
    vocab, origin = _vocabulary(options, files, wanted)
    summary: dict[str, Any] = {
        "tokenizer": options.tokenizer,
        "vocabulary": f"{vocab.size:,} tokens, {vocab.path}{origin}",
    }
    for split in wanted:
        summary[split] = _prepare_split(options, split, files[split], vocab)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def split_options(options: WikitextOptions, split: str, file: Path, vocab: Vocabulary) -> dict[str, Any]:
    """Return the options recorded in (and compared against) a split folder's manifest."""
    return {
        "tokenizer": options.tokenizer,
        "split": split,
        "input_file": str(file),
        "vocab_file": str(vocab.path),
        "vocab_sha256": vocab.sha256,
        "do_lower_case": options.do_lower_case,
        "eos_token": vocab.eos[0],
        "eos_id": vocab.eos[1],
        "pad_token": vocab.pad[0],
        "pad_id": vocab.pad[1],
    }


def _vocabulary(
    options: WikitextOptions, files: dict[str, Path], wanted: list[str]
) -> tuple[Vocabulary, str]:
    """Return the vocabulary of the run, building OUT/vocab.txt from train if no file is given."""
    if options.vocab_file is not None:
        if options.tokenizer == "wordpiece":
            vocab = load_vocab(options.vocab_file, options.do_lower_case)
            check_casing(vocab, options.do_lower_case)
            return _wordpiece(vocab), ""
        return _words(read_word_vocab(options.vocab_file), options.vocab_file), ""
    out = Path(options.output_dir)
    path = out.resolve() / VOCAB
    built = f" (built from {files['train'].name})" if "train" in files else ""
    if path.is_file():
        vocab = _words(read_word_vocab(path), path)
        # A rerun of a finished command: the splits' manifests vouch for vocab.txt, so train is not reread.
        if all(
            _finished(out / split, split_options(options, split, files[split], vocab)) for split in wanted
        ):
            return vocab, built
    if "train" not in files:
        raise InputError(
            f"--input {options.input}: no train split ({', '.join(split_file_names('train'))}) to build the "
            "word vocabulary from; pass --vocab-file with one made earlier"
        )
    words = build_word_vocab(read_lines(files["train"]))
    text = words.text()
    if path.is_file():
        if path.read_bytes() != text.encode("utf-8"):
            raise OutputError(
                f"--output-dir {out}: holds a vocab.txt other than the one {files['train']} gives; "
                "use another folder"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out)  # a vocab.txt a killed run left half written
        write_text_atomic(path, text)
    return _words(words, path), built


def _finished(folder: Path, recorded: dict[str, Any]) -> bool:
    """Return whether a run with the options ``recorded`` finished in ``folder``."""
    try:
        return read_manifest(folder, KIND, verify=False)["options"] == jsonable(recorded)
    except InputError:
        return False


def _words(vocab: WordVocab, path: Path) -> Vocabulary:
    get, unk, eos = vocab.ids.get, vocab.unk_id, vocab.eos_id

    def encode(lines: list[str]) -> tuple[np.ndarray, int]:
        ids = array("i")
        written_unk = 0  # WikiText's own <unk> marks: in the vocabulary, not out of it
        for line in lines:
            words = line.split()
            ids.extend([get(word, unk) for word in words])
            ids.append(eos)
            written_unk += words.count(UNK)
        stream = np.frombuffer(ids, dtype=np.int32)
        return stream, int(np.count_nonzero(stream == unk)) - written_unk

    return Vocabulary(
        path=path,
        sha256=sha256_file(path),
        size=len(vocab),
        eos=(vocab.tokens[eos], eos),
        pad=(vocab.tokens[vocab.pad_id], vocab.pad_id),
        unk_id=unk,
        encode=encode,
    )


def _wordpiece(vocab: WordPieceVocab) -> Vocabulary:
    tokenizer = vocab.tokenizer()
    sep = (vocab.sep_id,)

    def encode(lines: list[str]) -> tuple[np.ndarray, int]:
        encodings = tokenizer.encode_batch(lines, add_special_tokens=False)
        stream = np.fromiter(chain.from_iterable(chain(e.ids, sep) for e in encodings), dtype=np.int32)
        return stream, int(np.count_nonzero(stream == vocab.unk_id))

    return Vocabulary(
        path=vocab.path,
        sha256=sha256_file(vocab.path),
        size=len(vocab),
        eos=("[SEP]", vocab.sep_id),
        pad=("[PAD]", vocab.pad_id),
        unk_id=vocab.unk_id,
        encode=encode,
    )


def _prepare_split(options: WikitextOptions, split: str, file: Path, vocab: Vocabulary) -> str:
    """Write ``split``'s folder unless a run with the same options finished it; return its summary row."""
    start = time.perf_counter()
    folder = Path(options.output_dir) / split
    recorded = split_options(options, split, file, vocab)
    with claimed_output_dir(folder, KIND, recorded, owned=[TOKENS]) as claim:
        if claim.done is not None:
            return _row(claim.done["counts"], time.perf_counter() - start, " (already complete)")
        counts = _write_tokens(folder, file, vocab)
        claim.finish(counts, [TOKENS])
    return _row(counts, time.perf_counter() - start, "")


def _row(counts: dict[str, Any], seconds: float, status: str) -> str:
    return (
        f"{counts['lines']:,} lines, {counts['tokens']:,} tokens, unk {counts['unk_rate']:.2%} "
        f"({counts['oov']:,} out of vocabulary), {seconds:.1f} s{status}"
    )


def _write_tokens(folder: Path, file: Path, vocab: Vocabulary) -> dict[str, Any]:
    """Write the token stream of ``file`` to ``folder/tokens.arrow``; return its counts."""
    stats: Counter = Counter(lines=0, tokens=0, unk=0, oov=0)
    # Tokens go to a scratch file first, so that the stream becomes one record batch (one array to map)
    # without being held in memory. Its *.tmp-* name is swept by a resumed claim after a kill.
    scratch = tmp_path_for(folder / "tokens.int32")
    try:
        with open(scratch, "wb") as sink, progress(f"{folder.name}: lines", total=None) as advance:
            for lines in _batches(read_lines(file)):
                ids, oov = vocab.encode(lines)
                ids.tofile(sink)
                unk = int(np.count_nonzero(ids == vocab.unk_id))
                stats.update(lines=len(lines), tokens=len(ids), unk=unk, oov=oov)
                advance(len(lines))
        if not stats["lines"]:
            raise InputError(f"{file}: empty; a WikiText split holds one paragraph per line")
        tokens = np.memmap(scratch, dtype=np.int32, mode="r")
        with open_writer(folder / TOKENS, SCHEMA) as writer:
            writer.write_batch(pa.record_batch([pa.array(tokens)], schema=SCHEMA))
    finally:
        scratch.unlink(missing_ok=True)
    return {
        **stats,
        "unk_rate": round(stats["unk"] / stats["tokens"], 6),
        "oov_rate": round(stats["oov"] / stats["tokens"], 6),
        "vocab_size": vocab.size,
    }


def _batches(lines: Iterable[str]) -> Iterator[list[str]]:
    it = iter(lines)
    while batch := list(islice(it, ENCODE_LINES)):
        yield batch
