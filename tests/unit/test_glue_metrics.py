"""GLUE metrics agree with scikit-learn and SciPy, ties and degenerate cases included."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from linctl.errors import ConfigError, InputError
from linctl.metrics.glue import (
    TASK_METRICS,
    accuracy,
    f1,
    glue_metrics,
    matthews,
    pearson,
    spearman,
)

SIZES = [1, 2, 7, 97, 1001]


def _classes(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(0, k, n), rng.integers(0, k, n)


def _sklearn(fn, *args, **kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero_division and constant-input warnings: the value is the point
        return float(fn(*args, **kwargs))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("k", [2, 3])
def test_classification_metrics_match_sklearn(n, k):
    rng = np.random.default_rng(n * 10 + k)
    for _ in range(5):
        pred, gold = _classes(rng, n, k)
        assert accuracy(pred, gold) == pytest.approx(skm.accuracy_score(gold, pred), abs=1e-12)
        assert matthews(pred, gold) == pytest.approx(_sklearn(skm.matthews_corrcoef, gold, pred), abs=1e-12)
        if k == 2:
            assert f1(pred, gold) == pytest.approx(_sklearn(skm.f1_score, gold, pred), abs=1e-12)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ([0, 0, 0, 0], [0, 0, 0, 0]),  # no positives anywhere
        ([0, 0, 0], [1, 1, 0]),  # nothing predicted positive
        ([1, 1, 1], [0, 0, 0]),  # nothing labelled positive
        ([1, 1, 1, 1], [1, 0, 1, 0]),  # constant prediction
        ([1, 0, 1, 0], [1, 1, 1, 1]),  # constant labels
        ([1, 0, 1], [1, 0, 1]),  # perfect
        ([0, 1, 0], [1, 0, 1]),  # perfectly wrong
        ([2, 2, 2], [0, 1, 2]),  # constant prediction, three classes
    ],
)
def test_degenerate_cases_match_sklearn(pred, gold):
    pred, gold = np.array(pred), np.array(gold)
    assert matthews(pred, gold) == pytest.approx(_sklearn(skm.matthews_corrcoef, gold, pred), abs=1e-12)
    if set(pred) | set(gold) <= {0, 1}:
        assert f1(pred, gold) == pytest.approx(_sklearn(skm.f1_score, gold, pred), abs=1e-12)


def test_degenerate_values():
    assert matthews([1, 1, 1], [0, 1, 1]) == 0.0  # constant prediction
    assert f1([0, 0], [0, 0]) == 0.0  # no positives: scikit-learn's zero_division default


@pytest.mark.parametrize("n", [2, 3, 7, 97, 1001])
@pytest.mark.parametrize("ties", [False, True])
def test_correlations_match_scipy(n, ties):
    rng = np.random.default_rng(n + ties)
    for _ in range(5):
        if ties:  # STS-B gold scores come in steps of 0.2; predictions rounded to 0.5 tie often
            gold = rng.integers(0, 26, n) / 5
            pred = np.round(gold + rng.normal(0, 1.5, n), 0) / 2
        else:
            gold = rng.uniform(0, 5, n)
            pred = gold + rng.normal(0, 2.0, n)
        if np.ptp(pred) == 0 or np.ptp(gold) == 0:
            continue
        assert pearson(pred, gold) == pytest.approx(stats.pearsonr(pred, gold)[0], abs=1e-12)
        assert spearman(pred, gold) == pytest.approx(stats.spearmanr(pred, gold)[0], abs=1e-12)


def test_spearman_ranks_ties_by_average():
    pred, gold = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 3.0]), np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0])
    assert spearman(pred, gold) == pytest.approx(stats.spearmanr(pred, gold)[0], abs=1e-12)
    assert spearman(pred, pred**3) == pytest.approx(1.0, abs=1e-12)  # monotone, ties on both sides


def test_correlation_of_a_constant_or_non_finite_side_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(stats.pearsonr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])[0])
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))
    assert math.isnan(pearson([1.0, np.nan, 3.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, np.inf, 3.0], [1.0, 2.0, 3.0]))


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(InputError, match=r"\(3,\) and labels \(2,\)"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(InputError):
        f1([], [])
    with pytest.raises(InputError):
        pearson([[1.0, 2.0]], [[1.0, 2.0]])


def test_task_table_names_glue_metrics():
    assert TASK_METRICS["cola"] == ("matthews",)
    assert TASK_METRICS["mrpc"] == TASK_METRICS["qqp"] == ("f1", "accuracy")
    assert TASK_METRICS["stsb"] == ("pearson", "spearman")
    for task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        assert TASK_METRICS[task] == ("accuracy",)


def test_glue_metrics_reports_each_tasks_metrics():
    pred, gold = np.array([1, 0, 1, 1, 0]), np.array([1, 0, 0, 1, 1])
    assert glue_metrics("MRPC", pred, gold) == {"f1": f1(pred, gold), "accuracy": 0.6}
    assert glue_metrics("CoLA", pred, gold) == {"matthews": matthews(pred, gold)}
    assert set(glue_metrics("STS-B", pred * 1.5, gold)) == {"pearson", "spearman"}
    assert glue_metrics("sst-2", pred, gold) == {"accuracy": 0.6}
    assert glue_metrics("mnli", pred, gold) == {"accuracy": 0.6}


def test_glue_metrics_refuses_unknown_tasks():
    with pytest.raises(ConfigError, match="unknown GLUE task 'squad'"):
        glue_metrics("squad", [0], [0])
