"""The one training loop: any model, any task, checkpoints that a rerun resumes from exactly."""

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from linctl.data.loader import Batches
from linctl.errors import InputError, LinctlError, RankFailed
from linctl.models import MODELS
from linctl.runtime.device import autocast, resolve_device, rng_states, set_rng_states
from linctl.tasks import TASKS
from linctl.tasks.base import shared_evaluation
from linctl.train import checkpoint
from linctl.train.config import RunConfig
from linctl.train.distributed import Job
from linctl.train.logging import MetricsLog, TrainProgress
from linctl.train.optim import build_optimizer, learning_rate
from linctl.train.warm_start import WarmStart, warm_start


class TrainingError(LinctlError):
    """Training cannot go on (a non-finite loss)."""


@dataclass
class TrainResult:
    """What a call of ``train`` did."""

    model_dir: Path
    steps: int
    resumed_from: int  # 0 for a fresh run
    checkpoint: Path | None
    warm_start: WarmStart | None = None  # the pretrained weights a fresh run started from
    eval: dict[str, float] = field(default_factory=dict)
    train: dict[str, float] = field(default_factory=dict)  # metrics of the last logging window
    tokens_per_s: float = 0.0
    padding: float = 0.0  # share of batch slots that were padding
    main: bool = True  # whether this process is the one that reports (rank 0 under torchrun)


Preflight = Callable[[RunConfig, torch.device], None]


def train(cfg: RunConfig, preflight: Preflight | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.task``; resume from the newest checkpoint in ``cfg.model_dir``.

    Under torchrun every process calls this: they share each step's micro-batches, rank 0 alone logs and
    shows progress, and checkpoints are written together (linctl.train.distributed).

    Args:
        preflight: with ``train.compile``, called before compiling to refuse a config that would not
            train (the CLI passes `linctl validate`'s check), so that it fails in seconds, not minutes.
    """
    job, device = Job.join(resolve_device(cfg.train.device))
    try:
        return _train(cfg, preflight, job, device)
    except RuntimeError as exc:
        if job.world == 1:
            raise
        # most often a collective that lost a process that died: "[…/pair.cc:553] Connection closed by
        # peer [127.0.0.1]:59108. This is typically caused by …": its first sentence, without the source line
        detail = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(exc).split())).split(". ")[0][:300]
        raise RankFailed(
            f"process {job.rank} of {job.world} stopped: {detail} "
            f"(if another process died, torchrun names it)",
            1,
        ) from exc
    finally:
        job.leave()


def _train(cfg: RunConfig, preflight: Preflight | None, job: Job, device: torch.device) -> TrainResult:
    opts = cfg.train
    mine = job.micro_batches(opts.accumulate)
    torch.use_deterministic_algorithms(opts.deterministic)
    # Nothing is written to the model folder (nor is it created) before every check has passed: a run
    # refused leaves the folder as it found it, or absent.
    model_dir = Path(cfg.model_dir)
    resume = checkpoint.latest(model_dir)
    if resume is not None:
        resumed = checkpoint.check(resume, cfg.model.model_dump(mode="json"))  # damaged: refused, not skipped
        checkpoint.check_strategy(resume, job.joined and opts.strategy == "fsdp")

    torch.manual_seed(opts.seed)
    task = TASKS.build(cfg.task, cfg.model, opts.seed)
    task.check()
    if opts.compile and preflight is not None:
        preflight(cfg, device)
    model = MODELS.build(cfg.model).to(device)  # the same initial weights in every process
    started = None
    if resume is None and opts.init_checkpoint is not None:
        started = warm_start(model, opts.init_checkpoint, task.files().get("vocab.txt"))
    if resume is not None and not checkpoint.is_sharded(resume):
        checkpoint.load_weights(model, resume)
    replica = job.wrap(model, opts.strategy, opts.precision)
    # batches differ in length (bucketing): one shape-generic program instead of a recompile per length
    stepping = torch.compile(replica, dynamic=True) if opts.compile else replica  # shares ``model``'s weights
    optimizer = build_optimizer(model, cfg.optim)
    step = 0
    if resume is not None:
        if checkpoint.is_sharded(resume):
            checkpoint.load_sharded(model, optimizer, resume)
        else:
            checkpoint.load_optimizer(optimizer, resume, device)
        step = resumed["step"]
        set_rng_states(job.own_rng(resumed, opts.seed), device)
    elif not job.main:
        set_rng_states(job.own_rng({"step": 0}, opts.seed), device)  # dropout: other draws than rank 0

    batches = Batches(task.train_lengths, opts.batch_size, opts.seed, opts.bucket_window)
    if batches.per_epoch == 0:
        raise InputError(
            f"task {cfg.task.kind}: {len(batches.lengths)} training examples, fewer than one batch of "
            f"train.batch_size {opts.batch_size}; lower train.batch_size or give more data"
        )
    config_dump = cfg.model_dump(mode="json")
    result = TrainResult(model_dir, step, step, resume, started)
    if job.main:
        model_dir.mkdir(parents=True, exist_ok=True)  # the checks passed: the run writes from here on
        checkpoint.remove_partial(model_dir)
    log = MetricsLog(model_dir, step) if job.main else None
    window = _Window()
    model.train()
    try:
        with TrainProgress(opts.steps, step, shown=job.main) as bar:
            while step < opts.steps:
                lr = learning_rate(cfg.optim, step, opts.steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                losses = []
                for micro in mine:
                    index = step * opts.accumulate + micro
                    batch = {k: v.to(device) for k, v in task.train_batch(batches[index], index).items()}
                    with job.accumulating(replica, last=micro == mine[-1]):
                        with autocast(device, opts.precision):
                            loss, sums = task.loss(stepping, batch)
                        (loss / len(mine)).backward()  # the processes' gradients are averaged
                    losses.append(loss.detach())
                    window.add(sums, *task.count_tokens(batch))
                clip = cfg.optim.clip_grad_norm or math.inf
                grad_norm = job.norm(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
                (loss_sum,) = job.sum([float(torch.stack(losses).sum())])
                step_loss = loss_sum / opts.accumulate
                if not (math.isfinite(step_loss) and math.isfinite(grad_norm)):
                    last = checkpoint.latest(model_dir)
                    raise TrainingError(
                        f"loss {step_loss} (gradient norm {grad_norm}) at step {step + 1}: training stopped; "
                        f"the last good checkpoint is {last or 'none (no checkpoint yet)'}; "
                        f"try a lower optim.lr or precision fp32"
                    )
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1

                if step % opts.log_every == 0 or step == opts.steps:
                    record = window.flush(task.summarize, job)
                    result.train, result.tokens_per_s = record["train"], record["tokens_per_s"]
                    if log is not None:
                        log.write({"step": step, "lr": lr, "grad_norm": grad_norm, **_flat(record)})
                bar.update(step, step_loss, lr, result.tokens_per_s)
                paused = time.perf_counter()
                if (opts.eval_every and step % opts.eval_every == 0) or step == opts.steps:
                    with shared_evaluation(job.rank, job.world), job.evaluating(replica) as evaluated:
                        result.eval = task.evaluate(evaluated, device, opts.eval_batch_size, opts.precision)
                    if result.eval and log is not None:
                        log.write({"step": step, **{f"eval_{k}": v for k, v in result.eval.items()}})
                if (opts.checkpoint_every and step % opts.checkpoint_every == 0) or step == opts.steps:
                    state = {"step": step, "rng": rng_states(device), "micro_batches": step * opts.accumulate}
                    if job.joined:
                        state["rank_rng"] = job.gather(rng_states(device))
                    files, keep = task.files(), opts.keep_checkpoints
                    result.checkpoint = checkpoint.save(
                        model_dir, step, model, optimizer, state, config_dump, files, keep, job
                    )
                window.start += time.perf_counter() - paused  # evaluation and saving are not training time
    finally:
        if log is not None:
            log.close()
    result.steps, result.padding, result.main = step, window.padding, job.main
    return result


class _Window:
    """Sums of a logging window: task sums, real tokens and batch slots, wall time."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.tokens = self.slots = 0
        self.total_tokens = self.total_slots = 0
        self.start = time.perf_counter()

    def add(self, sums: dict[str, torch.Tensor], tokens: int, slots: int) -> None:
        for key, value in sums.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.tokens += tokens
        self.slots += slots

    def flush(self, summarize: Any, job: Job) -> dict[str, Any]:
        """Return the window's record, its sums, tokens and slots added up over every process."""
        seconds = max(time.perf_counter() - self.start, 1e-9)
        keys = sorted(self.sums)
        *totals, self.tokens, self.slots = job.sum([*(self.sums[k] for k in keys), self.tokens, self.slots])
        self.sums = dict(zip(keys, totals, strict=True))
        record = {
            "train": summarize(self.sums),
            "tokens_per_s": self.tokens / seconds,
            "padding": 1.0 - self.tokens / max(1, self.slots),
        }
        self.total_tokens += self.tokens
        self.total_slots += self.slots
        self.sums, self.tokens, self.slots = {}, 0, 0
        self.start = time.perf_counter()
        return record

    @property
    def padding(self) -> float:
        """Share of padding over the whole run so far."""
        return 1.0 - self.total_tokens / max(1, self.total_slots)


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    rest = {key: value for key, value in record.items() if key != "train"}
    return {**{f"train_{key}": value for key, value in record["train"].items()}, **rest}
