"""The report's library: which runs count as seeds of one config, their spread, and which published figure
a run is comparable with (tests/cli/test_report_cli.py runs the whole command on real tiny runs)."""

from pathlib import Path

import numpy as np
import pytest

from linctl.config.load import load_config
from linctl.report.published import published
from linctl.report.runs import Evaluation, TrainRun
from linctl.report.seeds import seed_groups, spreads
from linctl.train.config import RunConfig

REPO = Path(__file__).resolve().parents[2]


def run(config: str, *overrides: str, accuracy: float = 0.5) -> TrainRun:
    """A run of ``config`` (a shipped config with ``overrides``) evaluated once, without training."""
    dumped = load_config(REPO / config, RunConfig, list(overrides)).model_dump(mode="json")
    result = {
        "step": dumped["train"]["steps"],
        "task": dumped["task"]["kind"],
        "accuracy": accuracy,
        "loss": 0.7,
    }
    folder = Path(dumped["model_dir"])
    return TrainRun(folder, dumped, [], [Evaluation("newest checkpoint", folder / "eval.json", result)])


SST2 = "configs/glue/sst2-wt2-linformer.yaml"


def test_runs_that_differ_only_in_seed_and_folder_are_one_group():
    seeds = [
        run(SST2, f"train.seed={s}", f"model_dir=m{s}", accuracy=a) for s, a in ((0, 0.8), (1, 0.7), (7, 0.9))
    ]
    other = run(SST2, "train.seed=3", "optim.lr=2e-4")  # another config: no group of its own with one run
    again = run(SST2, "train.seed=1", "model_dir=again")  # a seed already there counts once
    assert seed_groups([seeds[0], other, seeds[1], again, seeds[2]]) == [seeds]


def test_the_spread_is_numpys_mean_and_sample_std():
    group = [run(SST2, f"train.seed={s}", accuracy=a) for s, a in ((0, 0.81), (1, 0.77), (2, 0.79))]
    (accuracy, loss) = spreads(group)
    assert (accuracy.metric, accuracy.evaluation, accuracy.seeds) == (
        "accuracy",
        "newest checkpoint",
        [0, 1, 2],
    )
    values = np.array([0.81, 0.77, 0.79])
    assert accuracy.mean == pytest.approx(values.mean()) and accuracy.std == pytest.approx(values.std(ddof=1))
    assert loss.std == 0.0


@pytest.mark.parametrize(
    ("config", "figures"),
    [
        ("configs/lm/wt2-transformer.yaml", [33.0]),
        ("configs/lm/wt2-primal.yaml", [31.0]),
        ("configs/translation/wmt14-transformer.yaml", [29.92]),
        ("configs/translation/wmt14-linformer.yaml", [30.08]),
        (SST2, [0.934]),
        ("configs/glue/sst2-wt2-funnel.yaml", []),
    ],
)
def test_a_published_figure_meets_the_runs_of_its_model_only(config, figures):
    found = run(config)
    assert [figure.figure for figure in published() if figure.comparable(found)] == figures


@pytest.mark.parametrize(
    ("protocol", "alike"),
    [("GLUE SST-2 dev, 872 examples", True), ("GLUE CoLA dev, 1,043 examples", False), (None, False)],
)
def test_a_figure_of_one_glue_task_meets_evaluations_of_that_task_only(protocol, alike):
    (figure,) = [figure for figure in published() if figure.comparable(run(SST2))]
    result = {"step": 1, "task": "classification", "accuracy": 0.8}
    result |= {"protocol": protocol} if protocol else {}
    assert figure.scored_alike(Evaluation("newest checkpoint", Path("eval.json"), result)) is alike


def test_every_published_figure_cites_its_source():
    for figure in published():
        assert figure.source and figure.setting and figure.match
