"""Runs of one config that differ only in ``train.seed``: the mean and standard deviation of their metrics."""

import json
import statistics
from dataclasses import dataclass

from linctl.report.runs import TrainRun


@dataclass(frozen=True)
class Spread:
    """One metric of one evaluation over the seeds of a config."""

    runs: list[TrainRun]
    evaluation: str  # Evaluation.name, the same in every run
    metric: str
    values: list[float]  # in the order of ``runs``

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        """The sample standard deviation (n - 1 in the denominator): the seeds are a sample of all seeds."""
        return statistics.stdev(self.values)

    @property
    def seeds(self) -> list[int]:
        return [run.config["train"]["seed"] for run in self.runs]


def seed_groups(runs: list[TrainRun]) -> list[list[TrainRun]]:
    """Return the groups of two or more runs whose configs are equal but for ``train.seed`` (and the model
    folder), in the order of their first run; runs that repeat a seed count once."""
    groups: dict[str, dict[int, TrainRun]] = {}
    for run in runs:
        groups.setdefault(_without_seed(run), {}).setdefault(run.config["train"]["seed"], run)
    return [list(by_seed.values()) for by_seed in groups.values() if len(by_seed) > 1]


def spreads(group: list[TrainRun]) -> list[Spread]:
    """Return the spread of every metric of every evaluation that each run of ``group`` has."""
    found = []
    for evaluation in group[0].evaluations:
        matching = [_named(run, evaluation.name) for run in group]
        if any(metrics is None for metrics in matching):
            continue
        for metric in evaluation.metrics:
            values = [metrics[metric] for metrics in matching if metrics is not None and metric in metrics]
            if len(values) == len(group):
                found.append(Spread(group, evaluation.name, metric, values))
    return found


def _named(run: TrainRun, name: str) -> dict[str, float] | None:
    return next((e.metrics for e in run.evaluations if e.name == name), None)


def _without_seed(run: TrainRun) -> str:
    config = {key: value for key, value in run.config.items() if key != "model_dir"}
    config["train"] = {key: value for key, value in config["train"].items() if key != "seed"}
    return json.dumps(config, sort_keys=True)
