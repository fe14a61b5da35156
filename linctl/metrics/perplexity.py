"""Perplexity and token accuracy from summed cross-entropy."""

import math


def perplexity(loss_sum: float, count: float) -> float:
    """Return exp(mean cross-entropy in nats) over ``count`` predictions (inf when there are none)."""
    if count <= 0:
        return math.inf
    mean = loss_sum / count
    return math.exp(mean) if mean < 700 else math.inf  # exp overflows float64 above ~709


def token_metrics(loss_sum: float, correct: float, count: float) -> dict[str, float]:
    """Return mean loss, perplexity and accuracy of ``count`` token predictions."""
    return {
        "loss": loss_sum / count if count else math.nan,
        "ppl": perplexity(loss_sum, count),
        "accuracy": correct / count if count else math.nan,
    }
