"""MLM example creation and masking: BERT's recipe (arXiv:1810.04805, §3.1 and appendix A.1).

Examples are cut from a document's tokens with a sliding window, as in Cerebras' MLM-only recipe: each
window holds ``max_seq_length - 2`` tokens (or, with ``short_seq_prob``, a random shorter length), shares
``overlap`` tokens with the window before it, and is framed as ``[CLS] … [SEP]``. Masking picks
``min(max_predictions, max(1, round(len · p)))`` positions among maskable tokens; each becomes [MASK]
80% of the time, a random word piece 10% and stays unchanged 10%. Whole-word masking picks whole words
(a piece and the ``##`` continuations after it) and skips a word that would overflow the budget.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from linctl.data.ragged import Ragged
from linctl.data.tokenizer import WordPieceVocab

MASK_SHARE, KEEP_SHARE = 0.8, 0.1  # the rest is a random replacement


@dataclass
class Windows:
    """Cut token streams into example bodies (the tokens between [CLS] and [SEP]).

    Args:
        separator: when set, documents form one stream joined by this token id and a window may span
            documents (``--allow-cross-document-examples``); when None each document is cut alone.
    """

    max_body: int
    overlap: int
    short_prob: float
    min_short: int
    rng: np.random.Generator
    separator: int | None = None
    _buf: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32), init=False)
    _fresh: int = field(default=0, init=False)  # tokens in _buf that no example has yet
    _target: int = field(default=0, init=False)

    def _draw(self) -> int:
        if self.rng.random() < self.short_prob:
            return int(self.rng.integers(self.min_short, self.max_body + 1))
        return self.max_body

    def cut(self, docs: Iterable[np.ndarray]) -> list[np.ndarray]:
        """Return the bodies that ``docs`` complete (a cross-document tail waits for ``flush``)."""
        return [body for doc in docs if len(doc) for body in self._cut_one(doc)]

    def flush(self) -> list[np.ndarray]:
        """Return the last, shorter body of a cross-document stream, if it holds unseen tokens."""
        tail = [self._buf] if self._fresh > 0 else []
        self._buf, self._fresh = self._buf[:0], 0
        return tail

    def _cut_one(self, doc: np.ndarray) -> list[np.ndarray]:
        if self.separator is None:
            bodies, start = [], 0
            while True:
                end = min(start + self._draw(), len(doc))
                bodies.append(doc[start:end])
                if end == len(doc):
                    return bodies
                start = end - self.overlap
        if len(self._buf):
            self._buf = np.concatenate([self._buf, [self.separator], doc]).astype(np.int32)
            self._fresh += 1 + len(doc)
        else:
            self._buf, self._fresh, self._target = doc, len(doc), self._draw()
        bodies = []
        while len(self._buf) >= self._target:
            bodies.append(self._buf[: self._target])
            self._buf = self._buf[self._target - self.overlap :]
            self._fresh = len(self._buf) - self.overlap
            self._target = self._draw()
        return bodies


def frame(bodies: list[np.ndarray], cls_id: int, sep_id: int) -> Ragged:
    """Return ``[CLS] body [SEP]`` for each body."""
    inner = Ragged.from_rows(bodies)
    offsets = inner.offsets + 2 * np.arange(len(inner) + 1)
    values = np.empty(offsets[-1], np.int32)
    body = np.ones(len(values), dtype=bool)
    body[offsets[:-1]] = body[offsets[1:] - 1] = False
    values[~body] = np.column_stack([np.full(len(inner), cls_id), np.full(len(inner), sep_id)]).ravel()
    values[body] = inner.values
    return Ragged(values, offsets)


class Masked(NamedTuple):
    """Masked examples: the inputs, the sorted masked positions and the original ids there."""

    input_ids: Ragged
    positions: Ragged
    labels: np.ndarray  # aligned with positions.values


@dataclass(frozen=True)
class Masking:
    """BERT's masking of framed examples; the same code serves static shards and dynamic masking."""

    prob: float
    max_predictions: int
    whole_word: bool
    mask_id: int
    excluded: np.ndarray  # bool per id: never masked ([CLS], [SEP], [PAD], [MASK], document separator)
    continuation: np.ndarray  # bool per id: ``##`` pieces
    replacements: np.ndarray  # ids drawn for the random 10%

    @classmethod
    def for_vocab(
        cls,
        vocab: WordPieceVocab,
        prob: float,
        max_predictions: int,
        whole_word: bool = False,
        also_excluded: Iterable[int] = (),
    ) -> "Masking":
        excluded = np.zeros(len(vocab), dtype=bool)
        excluded[[vocab.cls_id, vocab.sep_id, vocab.pad_id, vocab.mask_id, *also_excluded]] = True
        return cls(
            prob=prob,
            max_predictions=max_predictions,
            whole_word=whole_word,
            mask_id=vocab.mask_id,
            excluded=excluded,
            continuation=vocab.continuation,
            replacements=np.flatnonzero(~vocab.special).astype(np.int32),
        )

    def budget(self, lengths: np.ndarray) -> np.ndarray:
        """Positions to mask for examples of ``lengths`` tokens ([CLS] and [SEP] counted, as BERT does)."""
        return np.minimum(self.max_predictions, np.maximum(1, np.rint(lengths * self.prob))).astype(np.int64)

    def __call__(self, examples: Ragged, rng: np.random.Generator) -> Masked:
        """Mask ``examples``; every random choice comes from ``rng``."""
        rows, cols = examples.row_ids, examples.columns
        maskable = ~self.excluded[examples.values]
        budget = self.budget(examples.lengths)
        if self.whole_word:
            chosen = self._choose_words(examples, maskable, budget, rng)
        else:
            chosen = self._choose_pieces(examples, rows, cols, maskable, budget, rng)
        picked = np.flatnonzero(chosen)  # row-major: positions come sorted within each row
        labels = examples.values[picked]
        inputs = examples.values.copy()
        draw = rng.random(len(picked))
        inputs[picked[draw < MASK_SHARE]] = self.mask_id
        swap = picked[draw >= MASK_SHARE + KEEP_SHARE]
        inputs[swap] = rng.choice(self.replacements, size=len(swap))
        counts = np.bincount(rows[picked], minlength=len(examples))
        positions = Ragged(cols[picked].astype(np.int32), np.concatenate([[0], np.cumsum(counts)]))
        return Masked(Ragged(inputs, examples.offsets), positions, labels)

    @staticmethod
    def _choose_pieces(examples, rows, cols, maskable, budget, rng) -> np.ndarray:
        # Random keys, non-maskable tokens last; a row's `budget` smallest keys are its masked positions.
        keys = np.full((len(examples), int(examples.lengths.max(initial=0))), 2.0)
        keys[rows, cols] = np.where(maskable, rng.random(len(rows)), 2.0)
        order = np.argsort(keys, axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :], axis=1)
        budget = np.minimum(budget, np.bincount(rows, weights=maskable, minlength=len(examples)))
        return rank[rows, cols] < budget[rows]

    def _choose_words(self, examples, maskable, budget, rng) -> np.ndarray:
        values = examples.values
        after_maskable = np.concatenate([[False], maskable[:-1]])
        after_maskable[examples.offsets[:-1]] = False  # a row's first token continues nothing
        starts = maskable & ~(self.continuation[values] & after_maskable)
        chosen = np.zeros(len(values), dtype=bool)
        for row, (lo, hi) in enumerate(zip(examples.offsets[:-1], examples.offsets[1:], strict=True)):
            pieces = lo + np.flatnonzero(maskable[lo:hi])
            if not len(pieces):
                continue
            word_of = np.cumsum(starts[lo:hi])[pieces - lo] - 1
            sizes = np.bincount(word_of)
            taken, used = np.zeros(len(sizes), dtype=bool), 0
            for word in rng.permutation(len(sizes)):
                if used + sizes[word] <= budget[row]:
                    taken[word], used = True, used + sizes[word]
                    if used == budget[row]:
                        break
            chosen[pieces[taken[word_of]]] = True
        return chosen
