"""The config of a training run: model, task, optimizer and loop options, in one YAML file."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from linctl.config.strict import Strict
from linctl.data.options import PREPARE_SCHEMAS
from linctl.models import ModelSpec
from linctl.models.file import ModelFile
from linctl.runtime.device import DeviceName, Precision
from linctl.tasks import TaskSpec
from linctl.train.optim import OptimConfig


class LoopOptions(Strict):
    """How long to train and how often to report, evaluate and save."""

    steps: PositiveInt  # optimizer steps
    batch_size: PositiveInt = 32  # examples per micro-batch
    accumulate: PositiveInt = 1  # micro-batches per optimizer step
    precision: Precision = "fp32"
    seed: int = 0
    bucket_window: NonNegativeInt = 50  # batches sorted by length together; 0: no length bucketing
    log_every: PositiveInt = 10
    eval_every: NonNegativeInt = 0  # 0: evaluate after the last step only
    eval_batch_size: PositiveInt = 64
    checkpoint_every: NonNegativeInt = 1000  # 0: save after the last step only
    keep_checkpoints: PositiveInt = 3
    deterministic: bool = False  # torch.use_deterministic_algorithms
    device: DeviceName = "auto"
    compile: bool = False  # torch.compile the training step, after `linctl validate`'s checks pass
    init_checkpoint: Path | None = None  # pretrained weights for a fresh run: linctl or Hugging Face BERT


class RunConfig(Strict):
    """``linctl train --config X.yaml``."""

    model: ModelSpec
    task: TaskSpec
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: LoopOptions
    model_dir: Path = Path("runs/model")

    @model_validator(mode="after")
    def _warmup_fits(self) -> Self:
        if self.optim.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optim.warmup_steps ({self.optim.warmup_steps}) must be < train.steps ({self.train.steps})"
            )
        return self


RUN_SECTIONS = ("task", "optim", "train", "model_dir")  # any of these makes a file a run config


def config_schema(path: Path, data: Mapping[str, Any]) -> type[Strict]:
    """Return what kind of config ``data`` (read from ``path``) is, as the schema that checks it.

    ``prepare-<command>*.yaml`` holds that command's options; a file with a task, optim, train or
    model_dir section is a training run; one with only a ``model:`` section is a model file
    (configs/bench); anything else is checked as a run config, so that its missing sections are named.
    """
    for prefix, schema in PREPARE_SCHEMAS.items():
        if Path(path).stem.startswith(prefix):
            return schema
    if "model" in data and not any(key in data for key in RUN_SECTIONS):
        return ModelFile
    return RunConfig
