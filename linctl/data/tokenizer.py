"""BERT WordPiece vocabularies: load and check a vocab.txt, tokenize with `tokenizers`, train a new one."""

import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models, pre_tokenizers

from linctl.atomic import atomic_path
from linctl.data.inputs import read_metadata
from linctl.data.manifest import claimed_output_dir
from linctl.data.options import VocabOptions
from linctl.data.sources.textfile import read_lines
from linctl.data.wordpiece_training import bert_normalizer, count_words, train_wordpiece
from linctl.errors import InputError
from linctl.progress import warn

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB = "vocab.txt"  # what `prepare vocab` writes in its output folder


@dataclass(frozen=True)
class WordPieceVocab:
    """A BERT vocab.txt: token ``i`` is line ``i``; bracketed tokens like ``[CLS]`` are special."""

    path: Path
    tokens: tuple[str, ...]
    lowercase: bool

    @cached_property
    def ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """Return the id of ``token``, or raise InputError naming the vocabulary."""
        try:
            return self.ids[token]
        except KeyError:
            raise InputError(f"{self.path}: has no token {token!r}") from None

    @property
    def pad_id(self) -> int:
        return self.ids["[PAD]"]

    @property
    def unk_id(self) -> int:
        return self.ids["[UNK]"]

    @property
    def cls_id(self) -> int:
        return self.ids["[CLS]"]

    @property
    def sep_id(self) -> int:
        return self.ids["[SEP]"]

    @property
    def mask_id(self) -> int:
        return self.ids["[MASK]"]

    @cached_property
    def special(self) -> np.ndarray:
        """Bool per id: bracketed tokens ([CLS], [unused0], …), never drawn as random replacements."""
        return np.array([t.startswith("[") and t.endswith("]") for t in self.tokens], dtype=bool)

    @cached_property
    def continuation(self) -> np.ndarray:
        """Bool per id: WordPiece continuations (``##ing``), which belong to the word before them."""
        return np.array([t.startswith("##") for t in self.tokens], dtype=bool)

    @cached_property
    def cased(self) -> bool:
        """Whether the vocabulary holds upper-case word pieces (a cased model)."""
        return any(t != t.lower() for t, s in zip(self.tokens, self.special, strict=True) if not s)

    def tokenizer(self) -> Tokenizer:
        """Return a Rust WordPiece tokenizer with BERT's normalization (no special tokens are added)."""
        model = models.WordPiece(self.ids, unk_token="[UNK]", max_input_chars_per_word=100)
        tok = Tokenizer(model)
        tok.normalizer = bert_normalizer(self.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return tok


def check_casing(vocab: WordPieceVocab, do_lower_case: bool, unk_rate: float | None = None) -> None:
    """Warn when the input's casing (``--do-lower-case``) and the vocabulary's disagree."""
    if vocab.cased and do_lower_case:
        warn(
            f"{vocab.path} is cased but --do-lower-case lower-cases the input: its upper-case pieces go "
            "unused"
        )
    elif not vocab.cased and not do_lower_case:
        rate = "" if unk_rate is None else f" ({unk_rate:.2%} of tokens)"
        warn(
            f"{vocab.path} is uncased but --do-lower-case is off: capitalised words become [UNK]{rate}; "
            "pass --do-lower-case"
        )


def load_vocab(path: Path, lowercase: bool) -> WordPieceVocab:
    """Read a vocab.txt (one token per line) and check that BERT's special tokens are in it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--vocab-file {path}: file not found")
    text = "".join(read_lines(path))
    tokens = tuple(line.rstrip("\r\n") for line in text.splitlines())
    if not tokens:
        raise InputError(f"--vocab-file {path}: empty")
    missing = [s for s in SPECIALS if s not in tokens]
    if missing:
        raise InputError(
            f"--vocab-file {path}: lacks {', '.join(missing)}; a BERT vocabulary needs {', '.join(SPECIALS)}"
        )
    seen: dict[str, int] = {}
    for lineno, token in enumerate(tokens, 1):
        if token in seen:
            raise InputError(f"{path}:{lineno}: token {token!r} repeats line {seen[token]}")
        seen[token] = lineno
    return WordPieceVocab(path=path, tokens=tokens, lowercase=lowercase)


def train_vocab(options: VocabOptions) -> dict[str, int | float | str]:
    """Train a WordPiece vocabulary on the listed files and write ``output_dir/vocab.txt`` atomically.

    The same files and options give the same vocab.txt byte for byte, whatever ``--workers``
    (see :mod:`linctl.data.wordpiece_training`). The folder is claimed as every prepare output is
    (:func:`linctl.data.manifest.claimed_output_dir`): one writer at a time, a rerun of a finished command
    does nothing, and a killed run's temporary file goes at the rerun.
    """
    start = time.perf_counter()
    files = read_metadata(options.metadata_files, options.input_files_prefix)
    recorded, folder = options.model_dump(mode="json"), options.output_dir
    with claimed_output_dir(folder, "vocab", recorded, owned=[VOCAB], ignore=["workers"]) as claim:
        if claim.done is not None:
            return {**claim.done["counts"], "status": "already complete"}
        counts = count_words(files, options.do_lower_case, options.workers)
        tokens = train_wordpiece(counts, options.vocab_size, options.min_frequency, SPECIALS)
        with atomic_path(claim.folder / VOCAB) as tmp:
            tmp.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
        vocab = load_vocab(claim.folder / VOCAB, options.do_lower_case)
        summary = {
            "input files": len(files),
            "input bytes": sum(f.stat().st_size for f in files),
            "distinct words": len(counts),
            "vocabulary size": len(vocab),
        }
        claim.finish(summary, [VOCAB])
    return {**summary, "seconds": round(time.perf_counter() - start, 2)}
