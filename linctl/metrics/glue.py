"""GLUE metrics (Wang et al., arXiv:1804.07461): accuracy, F1, Matthews and rank correlations in numpy.

Each function takes predictions and gold labels as 1-D arrays of one length: class ids for classification
(F1 counts class 1 as the positive class, as GLUE reports it for MRPC and QQP), scores for STS-B. Values
match scikit-learn's ``accuracy_score``, ``f1_score``, ``matthews_corrcoef`` and SciPy's ``pearsonr`` and
``spearmanr``, degenerate cases included: F1 is 0 when nothing is predicted or labelled positive, MCC is 0
when either side is constant; a correlation with a constant or non-finite side is NaN.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from linctl.errors import ConfigError, InputError

Metric = Callable[[Any, Any], float]


def _pair(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return both sides as 1-D arrays of one non-zero length."""
    pred, gold = np.asarray(predictions), np.asarray(labels)
    if pred.ndim != 1 or gold.ndim != 1 or pred.shape != gold.shape or not pred.size:
        raise InputError(
            f"predictions {pred.shape} and labels {gold.shape} must be 1-D arrays of one non-zero length"
        )
    return pred, gold


def accuracy(predictions: Any, labels: Any) -> float:
    """Return the fraction of predictions equal to their label."""
    pred, gold = _pair(predictions, labels)
    return float(np.mean(pred == gold))


def f1(predictions: Any, labels: Any) -> float:
    """Return the F1 score of the positive class 1; 0 when there is no positive on either side."""
    pred, gold = _pair(predictions, labels)
    pred_pos, gold_pos = pred == 1, gold == 1
    tp = int(np.sum(pred_pos & gold_pos))
    denominator = int(np.sum(pred_pos)) + int(np.sum(gold_pos))  # 2·tp + fp + fn
    return 2 * tp / denominator if denominator else 0.0


def matthews(predictions: Any, labels: Any) -> float:
    """Return the Matthews correlation coefficient (Gorodkin's K-class form); 0 when a side is constant."""
    pred, gold = _pair(predictions, labels)
    classes, codes = np.unique(np.concatenate([gold, pred]), return_inverse=True)
    gold_codes, pred_codes = codes[: gold.size], codes[gold.size :]
    t_sum = np.bincount(gold_codes, minlength=classes.size).astype(np.float64)  # labelled per class
    p_sum = np.bincount(pred_codes, minlength=classes.size).astype(np.float64)  # predicted per class
    n, correct = float(gold.size), float(np.sum(gold_codes == pred_codes))
    cov_tp = correct * n - t_sum @ p_sum
    cov_pp = n * n - p_sum @ p_sum
    cov_tt = n * n - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


def pearson(predictions: Any, labels: Any) -> float:
    """Return Pearson's correlation coefficient; NaN when a side is constant or not finite."""
    pred, gold = _pair(predictions, labels)
    return _correlation(pred.astype(np.float64), gold.astype(np.float64))


def spearman(predictions: Any, labels: Any) -> float:
    """Return Spearman's rank correlation, ties given their average rank; NaN as for ``pearson``."""
    pred, gold = _pair(predictions, labels)
    pred, gold = pred.astype(np.float64), gold.astype(np.float64)
    if not (np.isfinite(pred).all() and np.isfinite(gold).all()):
        return float("nan")
    return _correlation(_ranks(pred), _ranks(gold))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Return the 1-based ranks of ``x``, each run of equal values given the mean of its ranks."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first index of each run
    ends = np.r_[starts[1:], x.size]  # one past its last index
    run = np.repeat(np.arange(starts.size), ends - starts)  # run of each sorted position
    ranks = np.empty(x.size)
    ranks[order] = ((starts + 1 + ends) / 2)[run]  # mean of the ranks starts+1 … ends
    return ranks


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    # Centre on the mean and scale to unit length before the dot product, as SciPy does: no overflow.
    x, y = x - x.mean(), y - y.mean()
    x_norm, y_norm = np.linalg.norm(x), np.linalg.norm(y)
    if x_norm == 0 or y_norm == 0:
        return float("nan")
    return float(np.clip((x / x_norm) @ (y / y_norm), -1.0, 1.0))


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
}

# Task -> the metrics GLUE reports for it, in the leaderboard's order; any labelled split (dev, MNLI's
# dev_matched and dev_mismatched, CoLA's in- and out-of-domain dev) is scored with them.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("matthews",),
    "sst2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "qqp": ("f1", "accuracy"),
    "stsb": ("pearson", "spearman"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}


def folded(name: str) -> str:
    """Return a GLUE task's name as linctl compares them: case, ``-`` and ``_`` ignored (SST-2 = sst2)."""
    return name.lower().replace("-", "").replace("_", "")


def task_name(task: str) -> str:
    """Return the key of ``task`` in ``TASK_METRICS`` (any spelling ``folded`` accepts)."""
    key = folded(task)
    if key not in TASK_METRICS:
        raise ConfigError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASK_METRICS)}")
    return key


def glue_metrics(task: str, predictions: Any, labels: Any) -> dict[str, float]:
    """Return the metrics GLUE reports for ``task``, by name, of predictions (class ids; scores for
    STS-B) against labels."""
    return {name: METRICS[name](predictions, labels) for name in TASK_METRICS[task_name(task)]}
