"""Evaluate a checkpoint on its task's evaluation data."""

from pathlib import Path
from typing import Any

import torch

from linctl.backends.device import resolve_device
from linctl.models import MODELS
from linctl.tasks import TASKS
from linctl.train import checkpoint
from linctl.train.config import RunConfig


def evaluate_checkpoint(cfg: RunConfig, found: Path) -> dict[str, Any]:
    """Return the step of ``found`` and its metrics on ``cfg.task``'s evaluation data."""
    checkpoint.check_model(found, cfg.model.model_dump(mode="json"))
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    task = TASKS.build(cfg.task, cfg.model, cfg.train.seed)
    model = MODELS.build(cfg.model).to(device)
    checkpoint.load_weights(model, found)
    metrics = task.evaluate(model, device, cfg.train.eval_batch_size, cfg.train.precision)
    step = checkpoint.read_state(found)["step"]
    return {"checkpoint": str(found), "step": step, "task": cfg.task.kind, **metrics}
