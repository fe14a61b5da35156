"""Training curves of the runs of one task, from their metrics logs: train and eval loss against step."""

from pathlib import Path

from linctl.atomic import atomic_path
from linctl.report.runs import TrainRun

CURVES = (("train_loss", "training loss (logging window)"), ("eval_loss", "evaluation loss"))


def training_curves(runs: list[TrainRun], path: Path) -> None:
    """Plot the training and evaluation loss of ``runs`` against optimizer step into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(11, 4.2))
    for axis, (key, title) in zip(axes, CURVES, strict=True):
        for run in runs:
            points = [(r["step"], r[key]) for r in run.records if key in r]
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", markersize=2, label=str(run.path))
        axis.set(xlabel="optimizer step", ylabel=title, title=title)
        axis.grid(True, alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=7)
    fig.suptitle(f"task {runs[0].task}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
