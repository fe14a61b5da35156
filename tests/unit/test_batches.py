"""Training batches as a pure function of their index, length bucketing, and evaluation batches."""

import itertools

import numpy as np
import pytest

from linctl.data.loader import Batches, eval_batches

N, B = 101, 3  # 33 batches an epoch; two examples left over


@pytest.fixture
def lengths() -> np.ndarray:
    return np.random.default_rng(5).integers(1, 17, N)


def epoch(batches: Batches, e: int) -> list[np.ndarray]:
    return [batches[e * batches.per_epoch + i] for i in range(batches.per_epoch)]


@pytest.mark.parametrize("window", [0, 1, 4, 100])
@pytest.mark.parametrize("e", [0, 3])
def test_an_epoch_draws_distinct_examples_in_full_batches(lengths, window, e):
    batches = Batches(lengths, B, seed=1, bucket_window=window)
    assert batches.per_epoch == N // B
    drawn = epoch(batches, e)
    assert all(batch.shape == (B,) for batch in drawn)
    flat = np.concatenate(drawn)
    assert len(flat) == batches.per_epoch * B == len(set(flat.tolist()))
    assert set(flat.tolist()) <= set(range(N))


@pytest.mark.parametrize("window", [0, 4])
def test_each_epoch_has_another_order(lengths, window):
    batches = Batches(lengths, B, seed=1, bucket_window=window)
    orders = [np.concatenate(epoch(batches, e)) for e in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


@pytest.mark.parametrize("window", [0, 4])
def test_batches_depend_on_seed_and_index_only(lengths, window):
    total = 3 * (N // B) + 5
    sequential = [Batches(lengths, B, seed=7, bucket_window=window)[i].tolist() for i in range(total)]
    other = Batches(lengths, B, seed=7, bucket_window=window)
    order = np.random.default_rng(0).permutation(total)
    assert {int(i): other[int(i)].tolist() for i in order} == dict(enumerate(sequential))
    again = Batches(lengths, B, seed=7, bucket_window=window)
    assert [again[i].tolist() for i in reversed(range(total))] == sequential[::-1]
    reseeded = Batches(lengths, B, seed=8, bucket_window=window)
    assert [reseeded[i].tolist() for i in range(total)] != sequential


def padding(batches: Batches, lengths: np.ndarray) -> int:
    drawn = epoch(batches, 0)
    return sum(int(B * lengths[b].max() - lengths[b].sum()) for b in drawn)


def test_bucketing_cuts_padding(lengths):
    plain = padding(Batches(lengths, B, seed=2, bucket_window=0), lengths)
    bucketed = padding(Batches(lengths, B, seed=2, bucket_window=8), lengths)
    assert bucketed < plain / 2
    whole_epoch = padding(Batches(lengths, B, seed=2, bucket_window=N), lengths)
    assert whole_epoch <= bucketed


@pytest.mark.parametrize("window", [8, N])
def test_bucketed_batches_are_shuffled_not_in_length_order(lengths, window):
    drawn = epoch(Batches(lengths, B, seed=2, bucket_window=window), 0)  # window N: one sorted run
    shortest = [int(lengths[b].min()) for b in drawn]
    assert shortest != sorted(shortest) and shortest != sorted(shortest, reverse=True)
    rises = sum(a <= b for a, b in itertools.pairwise(shortest))
    assert rises < 0.8 * len(shortest)  # not window after window of rising lengths


@pytest.mark.parametrize("size", [1, 3, 7, N, N + 4])
def test_eval_batches_cover_every_example_once(lengths, size):
    drawn = eval_batches(lengths, size)
    assert sorted(np.concatenate(drawn).tolist()) == list(range(N))
    assert all(1 <= len(batch) <= size for batch in drawn)
    assert all(len(batch) == size for batch in drawn[:-1])
