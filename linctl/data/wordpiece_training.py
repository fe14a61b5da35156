"""Train a WordPiece vocabulary: the merges of Hugging Face's trainer, made deterministic.

`tokenizers`' WordPiece trainer grows the vocabulary by BPE merges over word counts, continuation pieces
marked ``##``. It numbers the ``##x`` pieces in the order it meets words in a hash map, and breaks ties
between equally frequent pairs by those numbers, so two runs of one command keep different pieces. Here the
same algorithm breaks every tie by the pieces' text, and numbers the starting pieces in text order:

1. The alphabet is the ``limit_alphabet`` most frequent characters (ties by character); others are dropped
   from the words, as the peer drops them.
2. The vocabulary starts as the special tokens, the alphabet, then ``##c`` for each character seen inside a
   word, each group sorted.
3. While the vocabulary is short of ``vocab_size``, the most frequent adjacent pair (ties: the smaller pair
   of texts) with a count of at least ``min_frequency`` is merged in every word; the merged piece is ``a``
   followed by ``b`` without its ``##``, added if new.

Words are counted per input file in worker processes (BERT's normalizer and pre-tokenizer, from
`tokenizers`); counts add up the same in any order, so the vocabulary does not depend on ``--workers``.
"""

import heapq
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path

from tokenizers import normalizers, pre_tokenizers

from linctl.data.sources.textfile import read_lines
from linctl.data.workers import worker_pool
from linctl.progress import progress

PREFIX = "##"
LIMIT_ALPHABET = 1000  # the peer's default (BertWordPieceTokenizer.train)


def count_words(files: Sequence[Path], lowercase: bool, workers: int) -> Counter[str]:
    """Return the count of each word (BERT-normalized and pre-tokenized) in ``files``."""
    counts: Counter[str] = Counter()
    with progress("counting words", len(files)) as advance:
        if workers == 1 or len(files) == 1:
            for file in files:
                counts.update(_count_file(file, lowercase))
                advance()
            return counts
        with worker_pool(min(workers, len(files))) as pool:
            for file_counts in pool.map(_count_file, files, [lowercase] * len(files)):
                counts.update(file_counts)
                advance()
    return counts


def bert_normalizer(lowercase: bool) -> normalizers.Normalizer:
    """Return BERT's normalizer: control characters out, CJK characters spaced, and for an uncased
    vocabulary lower-casing with accents stripped."""
    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )


def _count_file(path: Path, lowercase: bool) -> Counter[str]:
    normalizer = bert_normalizer(lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for line in read_lines(path):
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    return counts


def train_wordpiece(
    counts: Mapping[str, int],
    vocab_size: int,
    min_frequency: int,
    specials: Sequence[str],
    limit_alphabet: int = LIMIT_ALPHABET,
) -> list[str]:
    """Return the tokens of a WordPiece vocabulary learnt from word ``counts``, in id order."""
    alphabet = _alphabet(counts, limit_alphabet)
    words, freqs = [], []
    continuations: set[str] = set()
    for word in sorted(counts):
        pieces = [ch if i == 0 else PREFIX + ch for i, ch in enumerate(word) if ch in alphabet]
        continuations.update(piece for piece in pieces if piece.startswith(PREFIX))
        if pieces:
            words.append(pieces)
            freqs.append(counts[word])
    tokens = list(dict.fromkeys([*specials, *sorted(alphabet), *sorted(continuations)]))
    known = set(tokens)

    pairs: defaultdict[tuple[str, str], int] = defaultdict(int)
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for w, pieces in enumerate(words):
        for pair in pairwise(pieces):
            pairs[pair] += freqs[w]
            where[pair].add(w)
    heap = [(-n, a, b) for (a, b), n in pairs.items()]
    heapq.heapify(heap)
    while len(tokens) < vocab_size and heap:
        negative, a, b = heapq.heappop(heap)
        if pairs.get((a, b)) != -negative:
            continue  # a stale entry: the pair's count changed since it was pushed
        if -negative < min_frequency:
            break
        merged = a + b.removeprefix(PREFIX)
        if merged not in known:
            known.add(merged)
            tokens.append(merged)
        changed = _merge((a, b), merged, words, freqs, pairs, where)
        for pair in changed:
            if pairs.get(pair, 0) > 0:
                heapq.heappush(heap, (-pairs[pair], *pair))
    return tokens


def _alphabet(counts: Mapping[str, int], limit: int) -> set[str]:
    chars: Counter[str] = Counter()
    for word, n in counts.items():
        for ch in word:
            chars[ch] += n
    return set(sorted(chars, key=lambda ch: (-chars[ch], ch))[:limit])


def _merge(
    pair: tuple[str, str],
    merged: str,
    words: list[list[str]],
    freqs: list[int],
    pairs: defaultdict[tuple[str, str], int],
    where: defaultdict[tuple[str, str], set[int]],
) -> set[tuple[str, str]]:
    """Merge ``pair`` left to right in every word holding it; update pair counts; return the pairs changed."""
    changed: set[tuple[str, str]] = set()
    a, b = pair
    for w in where.pop(pair, set()):
        pieces, n = words[w], freqs[w]
        out: list[str] = []
        i = 0
        while i < len(pieces):
            if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b:
                out.append(merged)
                i += 2
            else:
                out.append(pieces[i])
                i += 1
        if len(out) == len(pieces):
            continue
        for old in pairwise(pieces):
            pairs[old] -= n
            changed.add(old)
        for new in pairwise(out):
            pairs[new] += n
            where[new].add(w)
            changed.add(new)
        words[w] = out
    pairs.pop(pair, None)
    for stale in [p for p in changed if pairs.get(p) == 0]:
        del pairs[stale]
    return changed - {pair}
