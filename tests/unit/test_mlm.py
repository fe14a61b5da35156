"""Example windows and masking on tiny odd inputs."""

from itertools import pairwise

import numpy as np
import pytest

from linctl.data.mlm import Masking, Windows, frame
from linctl.data.ragged import Ragged

SEP = 3


def window(short_prob=0.0, separator=None, seed=0, max_body=11, overlap=3):
    return Windows(max_body, overlap, short_prob, overlap + 2, np.random.default_rng(seed), separator)


@pytest.mark.parametrize("length", [1, 5, 11, 12, 29, 97])
def test_windows_cover_a_document_with_the_overlap(length):
    doc = np.arange(100, 100 + length, dtype=np.int32)
    bodies = window().cut([doc])
    assert all(1 <= len(b) <= 11 for b in bodies)
    assert np.array_equal(bodies[0][:3], doc[:3]) and bodies[-1][-1] == doc[-1]
    for before, after in pairwise(bodies):
        assert np.array_equal(before[-3:], after[:3])  # consecutive windows share `overlap` tokens
    covered = np.concatenate([bodies[0], *(b[3:] for b in bodies[1:])])
    assert np.array_equal(covered, doc)


def test_short_windows_stay_within_bounds():
    doc = np.arange(5000, dtype=np.int32)
    lengths = [len(b) for b in window(short_prob=0.5, seed=1).cut([doc])[:-1]]
    assert min(lengths) >= 5 and max(lengths) == 11
    assert 0.3 < np.mean(np.array(lengths) < 11) < 0.6


def test_cross_document_windows_join_documents_with_the_separator():
    docs = [np.arange(10, 10 + n, dtype=np.int32) for n in (4, 7, 2, 15)]
    w = window(separator=SEP)
    bodies = w.cut(docs) + w.flush()
    assert all(len(b) == 11 for b in bodies[:-1])
    stream = np.concatenate([docs[0], [SEP], docs[1], [SEP], docs[2], [SEP], docs[3]])
    covered = np.concatenate([bodies[0], *(b[3:] for b in bodies[1:])])
    assert np.array_equal(covered, stream)
    assert w.flush() == []


def test_frame_adds_cls_and_sep():
    framed = frame([np.array([7, 8], np.int32), np.array([9], np.int32)], cls_id=1, sep_id=2)
    assert [r.tolist() for r in framed.rows()] == [[1, 7, 8, 2], [1, 9, 2]]


def masking(whole_word=False, vocab=40):
    excluded = np.zeros(vocab, bool)
    excluded[[0, 1, 2, 4]] = True  # pad, cls, sep, mask
    continuation = np.zeros(vocab, bool)
    continuation[30:] = True
    return Masking(0.15, 5, whole_word, 4, excluded, continuation, np.arange(5, 30, dtype=np.int32))


def test_masking_budget_positions_and_labels():
    rng = np.random.default_rng(0)
    rows = [np.concatenate([[1], rng.integers(5, 30, n), [2]]).astype(np.int32) for n in (3, 17, 40)]
    examples = Ragged.from_rows(rows)
    out = masking()(examples, np.random.default_rng(1))
    assert out.positions.lengths.tolist() == [1, 3, 5]  # round(0.15·len) with at least 1, at most 5
    for row, positions in zip(rows, out.positions.rows(), strict=True):
        assert (np.diff(positions) > 0).all() and positions.min() >= 1 and positions.max() < len(row) - 1
    assert np.array_equal(
        out.labels, examples.values[examples.offsets[out.positions.row_ids] + out.positions.values]
    )
    untouched = np.ones(len(examples.values), bool)
    untouched[examples.offsets[out.positions.row_ids] + out.positions.values] = False
    assert np.array_equal(out.input_ids.values[untouched], examples.values[untouched])


def test_whole_word_masking_takes_whole_words():
    row = np.array([1, 5, 30, 31, 6, 7, 32, 8, 33, 34, 35, 9, 2], np.int32)
    for seed in range(50):
        out = masking(whole_word=True)(Ragged.from_rows([row]), np.random.default_rng(seed))
        chosen = set(out.positions.values.tolist())
        for word in ([1, 2, 3], [4], [5, 6], [7, 8, 9, 10], [11]):
            assert chosen.isdisjoint(word) or chosen.issuperset(word)
        assert len(chosen) <= 2  # budget round(13·0.15) = 2


def test_ragged_round_trips_through_arrow():
    rows = [np.array([1, 2, 3], np.int32), np.array([], np.int32), np.array([4], np.int32)]
    ragged = Ragged.from_rows(rows)
    back = Ragged.from_arrow(ragged.to_arrow().slice(1))
    assert [r.tolist() for r in back.rows()] == [[], [4]]
    assert ragged.padded(0).tolist() == [[1, 2, 3], [0, 0, 0], [4, 0, 0]]
