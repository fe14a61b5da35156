"""The task contract, on the tiny MLM shards: tokens counted by the task, the one evaluation loop,
further splits and the generation hook merged into the metrics without overriding `evaluate`."""

from pathlib import Path

import numpy as np
import torch

from linctl.config.load import load_config
from linctl.models import MODELS
from linctl.runtime.device import resolve_device
from linctl.tasks import TASKS
from linctl.tasks.base import run_batches
from linctl.tasks.mlm import MlmTask
from linctl.train.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CPU = resolve_device("cpu")


def tiny(tiny_shards, **task):
    overrides = [f"task.train_dir={tiny_shards['train']}", f"task.eval_dir={tiny_shards['eval']}"]
    overrides += [f"task.{key}={value}" for key, value in task.items()]
    cfg = load_config(REPO / "configs" / "mlm" / "tiny.yaml", RunConfig, overrides)
    torch.manual_seed(0)
    return cfg, TASKS.build(cfg.task, cfg.model, 0), MODELS.build(cfg.model)


def test_the_task_counts_real_tokens_and_slots(tiny_shards):
    _, task, _ = tiny(tiny_shards)
    batch = task.train_batch(np.arange(5), 0)
    tokens, slots = task.count_tokens(batch)
    assert tokens == int(task.train_lengths[:5].sum())
    assert slots == batch["input_ids"].numel() and tokens <= slots


def test_one_loop_restores_the_mode_and_visits_every_example_once(tiny_shards):
    _, task, model = tiny(tiny_shards, eval_examples=23)
    model.train()
    seen = run_batches(
        model, CPU, "fp32", task.eval_lengths, 5, task.eval_batch, lambda m, b: len(b["input_ids"])
    )
    assert model.training and sum(seen) == 23 and max(seen) == 5


class Generating(MlmTask):
    """An MLM task that also scores the eval split's first batch again as a 'dev_again' split and
    reports a generation metric, as translation reports BLEU."""

    def more_eval_splits(self):
        return [("dev_again", self.eval_lengths, self.eval_batch)]

    def evaluate_generation(self, model, device, batch_size, precision):
        return {"generated": float(len(self.eval_lengths))}


def test_further_splits_and_the_generation_hook_join_the_metrics(tiny_shards):
    cfg, _, model = tiny(tiny_shards, eval_examples=17)
    task = Generating(cfg.task, cfg.model, 0)
    metrics = task.evaluate(model, CPU, 5, "fp32")
    assert metrics["generated"] == 17.0
    assert metrics["dev_again_ppl"] == metrics["ppl"] and metrics["dev_again_loss"] == metrics["loss"]
    assert set(metrics) >= {"loss", "ppl", "accuracy"}
