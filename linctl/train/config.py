"""The config of a training run: model, task, optimizer and loop options, in one YAML file."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from linctl.config.strict import Strict
from linctl.data.options import PREPARE_SCHEMAS
from linctl.models import MODELS, ModelSpec
from linctl.models.file import ModelFile
from linctl.models.hf import importer
from linctl.models.hf_bert import CONFIG_FILE as HF_CONFIG
from linctl.runtime.device import DeviceName, Precision
from linctl.tasks import TaskSpec
from linctl.train.optim import OptimConfig

Strategy = Literal["ddp", "fsdp"]  # under torchrun: replicas (DDP) or sharded weights (FSDP2)


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
    strategy: Strategy = "ddp"  # under torchrun: DDP (replicas) or FSDP2 (fully_shard per block)


class RunConfig(Strict):
    """``linctl train --config X.yaml``."""

    model: ModelSpec
    task: TaskSpec
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: LoopOptions
    model_dir: Path = Path("runs/model")

    @model_validator(mode="before")
    @classmethod
    def _sizes_from_hugging_face(cls, data: Any) -> Any:
        """A run that starts from a Hugging Face folder (BERT, Funnel) takes the sizes its model section
        leaves out from the folder's ``config.json`` (those it states are compared at the warm start), so
        that train, eval, validate and compile all build the same model."""
        sections = (data.get("model"), data.get("train")) if isinstance(data, dict) else ()
        if not sections or not all(isinstance(section, dict) for section in sections):
            return data
        init = data["train"].get("init_checkpoint")
        if init is None or not (Path(init) / HF_CONFIG).is_file():
            return data
        found = importer(Path(init))
        theirs = found.config(Path(init)).model_dump(mode="json")
        given = data["model"]
        sizes = [key for key in found.sizes if key not in given and key in _fields(given.get("kind"))]
        taken = {key: theirs[key] for key in sizes}
        return {**data, "model": {**given, **taken}}

    @model_validator(mode="after")
    def _warmup_fits(self) -> Self:
        if self.optim.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optim.warmup_steps ({self.optim.warmup_steps}) must be < train.steps ({self.train.steps})"
            )
        return self


def _fields(kind: Any) -> set[str]:
    """Return the config fields of the model family ``kind``; none for an unknown kind (refused later)."""
    return set(MODELS.classes[kind].Config.model_fields) if kind in MODELS.classes else set()


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
