"""Word vocabularies for language models: built from a training text, written and read as vocab.txt.

A vocab.txt holds one ``token count`` per line, as fairseq's dict.txt does; token ``i`` is line ``i``.
Unlike dict.txt it lists the special tokens too, first: ``<pad>`` 0, ``<eos>`` 1, ``<unk>`` 2. The words
follow by count, most frequent first, ties in order of first appearance, so the same text always gives the
same file. Each count is how often that id occurs in the training text's token stream: ``<eos>`` once per
line, ``<unk>`` as often as the text writes it (WikiText marks its rare words so), ``<pad>`` never.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from linctl.data.sources.textfile import read_lines
from linctl.errors import InputError

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIALS = (PAD, EOS, UNK)


@dataclass(frozen=True)
class WordVocab:
    """A word vocabulary: token ``i`` is ``tokens[i]``, seen ``counts[i]`` times in the training text."""

    tokens: tuple[str, ...]
    counts: tuple[int, ...]

    @cached_property
    def ids(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self.ids[PAD]

    @property
    def eos_id(self) -> int:
        return self.ids[EOS]

    @property
    def unk_id(self) -> int:
        return self.ids[UNK]

    def text(self) -> str:
        """Return the vocab.txt of this vocabulary."""
        return "".join(f"{token} {count}\n" for token, count in zip(self.tokens, self.counts, strict=True))


def build_word_vocab(lines: Iterable[str]) -> WordVocab:
    """Return the vocabulary of ``lines``: their whitespace-separated words, ``<eos>`` ending each line."""
    counts: Counter[str] = Counter()  # a dict: keys stay in order of first appearance
    n_lines = 0
    for line in lines:
        counts.update(line.split())
        n_lines += 1
    counts[EOS] += n_lines
    specials = [(token, counts.pop(token, 0)) for token in SPECIALS]
    words = sorted(counts.items(), key=lambda item: -item[1])  # stable: ties keep first appearance
    tokens, numbers = zip(*specials, *words, strict=True)
    return WordVocab(tokens=tokens, counts=numbers)


def read_word_vocab(path: Path) -> WordVocab:
    """Read a word vocab.txt (``token count`` per line, special tokens included) and check it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: word vocabulary not found")
    tokens: list[str] = []
    counts: list[int] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(read_lines(path), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit():
            raise InputError(
                f"{path}:{lineno}: {line.strip()!r} is not 'token count'; a word vocabulary is what "
                "prepare wikitext writes (a WordPiece vocab.txt needs --tokenizer wordpiece)"
            )
        token = fields[0]
        if token in seen:
            raise InputError(f"{path}:{lineno}: token {token!r} repeats line {seen[token]}")
        seen[token] = lineno
        tokens.append(token)
        counts.append(int(fields[1]))
    missing = [token for token in SPECIALS if token not in seen]
    if missing:
        raise InputError(
            f"{path}: lacks {', '.join(missing)}; a word vocabulary lists {', '.join(SPECIALS)} (a fairseq "
            "dict.txt leaves them out)"
        )
    return WordVocab(tokens=tuple(tokens), counts=tuple(counts))
