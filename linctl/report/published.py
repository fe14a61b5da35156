"""Published figures (published.yaml) and the runs each one is comparable with."""

from functools import cache
from pathlib import Path
from typing import Any

from linctl.config.load import read_yaml, validate
from linctl.config.strict import Strict
from linctl.report.runs import Evaluation, TrainRun

PUBLISHED_FILE = Path(__file__).with_name("published.yaml")


class Published(Strict):
    """One published number and where it comes from."""

    figure: float
    metric: str  # the `linctl eval` metric it compares with
    model: str
    setting: str  # data, scale and hardware as the source states them
    source: str  # paper and table
    match: dict[str, Any]  # dotted keys of a run's config.yaml and the values a comparable run has
    data: str | None = None  # what a comparable evaluation scored: its protocol line begins so

    def comparable(self, run: TrainRun) -> bool:
        """Return True when ``run``'s config has every value of ``match``."""
        return all(_lookup(run.config, key) == value for key, value in self.match.items())

    def scored_alike(self, evaluation: Evaluation) -> bool:
        """Return True when ``evaluation`` has the figure's metric and scored the figure's data."""
        protocol = evaluation.result.get("protocol") or ""
        return self.metric in evaluation.metrics and (self.data is None or protocol.startswith(self.data))


class PublishedFile(Strict):
    figures: list[Published]


@cache
def published() -> list[Published]:
    """Return the figures of published.yaml."""
    return validate(PublishedFile, read_yaml(PUBLISHED_FILE), str(PUBLISHED_FILE)).figures


_MISSING = object()


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    """Return the value at ``dotted`` (e.g. model.attention.kind) in ``config``; a marker when absent."""
    value: Any = config
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value
