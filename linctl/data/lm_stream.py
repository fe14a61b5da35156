"""Language-model token streams: a split folder of `linctl prepare wikitext`, read back memory-mapped.

The folder holds ``tokens.arrow`` (an Arrow IPC file with one record batch of one int32 column,
``input_ids``: the split's tokens in file order, ``<eos>`` or ``[SEP]`` ending each line) and
``manifest.json`` of kind ``lm``, whose options name the vocabulary and the end-of-line and padding ids.
"""

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from linctl.atomic import sha256_file
from linctl.data.manifest import MANIFEST, read_manifest
from linctl.data.tokenizer import load_vocab
from linctl.data.word_vocab import read_word_vocab
from linctl.errors import InputError

KIND = "lm"
TOKENS = "tokens.arrow"
SCHEMA = pa.schema([("input_ids", pa.int32())])
VOCAB = "vocab.txt"  # the word vocabulary prepare wikitext builds, beside the split folders


def vocab_size(path: Path, tokenizer: str) -> int:
    """Return the number of tokens in the vocabulary ``path`` of a ``word`` or ``wordpiece`` tokenizer."""
    return len(read_word_vocab(path) if tokenizer == "word" else load_vocab(path, lowercase=False))


class TokenStream:
    """One split's token stream.

    Opening checks the manifest (kind ``lm``) and, unless ``verify=False``, the sha256 of ``tokens.arrow``
    and of the vocabulary. ``tokens`` is a read-only int32 array over the memory-mapped file: nothing is
    copied, pages are read as they are touched.
    """

    def __init__(self, folder: Path, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest: dict[str, Any] = read_manifest(self.folder, kind=KIND, verify=verify)
        options = self.manifest["options"]
        self.tokenizer: str = options["tokenizer"]
        self.eos_id: int = options["eos_id"]
        self.pad_id: int = options["pad_id"]
        self.vocab_file: Path = self._find_vocab(options, verify)
        self.tokens: np.ndarray = _mapped(self.folder / TOKENS)
        if len(self.tokens) != self.manifest["counts"]["tokens"]:
            raise InputError(
                f"{self.folder / TOKENS}: {len(self.tokens):,} tokens, {MANIFEST} says "
                f"{self.manifest['counts']['tokens']:,}"
            )

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def vocab_size(self) -> int:
        return vocab_size(self.vocab_file, self.tokenizer)

    def _find_vocab(self, options: dict[str, Any], verify: bool) -> Path:
        """Return the vocabulary the manifest names, or the vocab.txt beside a folder moved with it."""
        path = Path(options["vocab_file"])
        beside = self.folder.parent / VOCAB
        if not path.is_file() and options["tokenizer"] == "word" and beside.is_file():
            path = beside
        if not path.is_file():
            raise InputError(f"{self.folder / MANIFEST}: vocabulary {path} not found")
        if verify and sha256_file(path) != options["vocab_sha256"]:
            raise InputError(f"{path}: not the vocabulary {self.folder} was prepared with (sha256 differs)")
        return path


def _mapped(path: Path) -> np.ndarray:
    """Return the ``input_ids`` of ``path`` as an int32 array over the memory-mapped file."""
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path)))
        if not reader.schema.equals(SCHEMA) or reader.num_record_batches != 1:
            raise InputError(f"{path}: expected one record batch of int32 input_ids, found {reader.schema}")
        return reader.get_batch(0).column(0).to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable Arrow IPC file ({exc})") from None
