"""Evaluate a checkpoint on its task's evaluation data; write the results as JSON."""

import json
import math
from pathlib import Path
from typing import Any

import torch

from linctl.atomic import write_text_atomic
from linctl.errors import ConfigError
from linctl.models import MODELS
from linctl.runtime.device import resolve_device
from linctl.tasks import TASKS
from linctl.tasks.base import Predictor
from linctl.train import checkpoint
from linctl.train.config import RunConfig

SCHEMA_VERSION = 1  # of eval.json and eval-all.json
EVAL_FILE, EVAL_ALL_FILE = "eval.json", "eval-all.json"  # in a checkpoint folder, in a model folder
# What a result says besides its metrics: the file's schema, the checkpoint, its step, the task's kind, the
# task section it was evaluated with (the data folder scored, after --set) and how the metrics were computed.
RECORD_KEYS = ("schema_version", "checkpoint", "step", "task", "task_config", "protocol")


def write_metrics(path: Path, result: dict[str, Any]) -> None:
    """Write one checkpoint's result (``evaluate_checkpoints``) as JSON."""
    write_text_atomic(path, json.dumps({"schema_version": SCHEMA_VERSION, **result}, indent=1) + "\n")


def write_all(path: Path, results: list[dict[str, Any]], best: int) -> None:
    """Write the results of every checkpoint of a model folder, and the best of them, as JSON."""
    every = {"schema_version": SCHEMA_VERSION, "best": results[best], "checkpoints": results}
    write_text_atomic(path, json.dumps(every, indent=1) + "\n")


def evaluate_checkpoints(
    cfg: RunConfig, folders: list[Path], only: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Evaluate each checkpoint of ``folders``; return their results and the index of the best one
    (by the task's ranking metric; the earliest among equals). ``only`` names the one metric wanted
    (a task may then skip work, e.g. decoding)."""
    steps = []
    for found in folders:  # every checkpoint's files before the first evaluation: fail fast
        steps.append(checkpoint.check(found, cfg.model.model_dump(mode="json"))["step"])
    device = resolve_device(cfg.train.device)
    task = TASKS.build(cfg.task, cfg.model, cfg.train.seed)
    results = []
    for found, step in zip(folders, steps, strict=True):
        torch.manual_seed(cfg.train.seed)
        model = MODELS.build(cfg.model).to(device)
        checkpoint.load_weights(model, found)
        metrics = task.evaluate(model, device, cfg.train.eval_batch_size, cfg.train.precision, only)
        result = {
            "checkpoint": str(found), "step": step, "task": cfg.task.kind,
            "task_config": cfg.task.model_dump(mode="json"), **metrics,
        }  # fmt: skip
        protocol = task.protocol()
        results.append(result | ({"protocol": protocol} if protocol else {}))
    metric, higher = task.ranking()
    scores = [result.get(metric, math.nan) for result in results]
    ranked = [i for i in range(len(scores)) if not math.isnan(scores[i])] or [0]
    best = (max if higher else min)(ranked, key=lambda i: scores[i])
    return results, best


def predict_checkpoint(cfg: RunConfig, found: Path, split: Path) -> list[tuple[int, str]]:
    """Return (index, prediction) for every example of the shard folder ``split``."""
    checkpoint.check_model(found, cfg.model.model_dump(mode="json"))
    device = resolve_device(cfg.train.device)
    task = TASKS.build(cfg.task, cfg.model, cfg.train.seed)
    if not isinstance(task, Predictor):
        raise ConfigError(f"--predict: task {cfg.task.kind} makes no predictions to submit")
    model = MODELS.build(cfg.model).to(device)
    checkpoint.load_weights(model, found)
    return task.predict(model, device, cfg.train.eval_batch_size, cfg.train.precision, split)
