"""Training on several processes with PyTorch's own engine: torchrun starts them, DDP or FSDP2 keeps them
in step, torch.distributed.checkpoint saves FSDP's shards.

A run's config means the same on any number of processes: an optimizer step takes ``train.accumulate``
micro-batches of ``train.batch_size`` examples, and the processes share them out, rank r taking its
block of ``accumulate / world`` consecutive ones. Every process reads only its own micro-batches, and the
examples of a step, their order and their masks are those of one process, so the loss curve is one
process's (up to the order of float additions).
"""

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from linctl.errors import ConfigError, RankFailed
from linctl.models.layers import Block
from linctl.runtime.device import Precision
from linctl.train.config import Strategy

# torch.distributed.fsdp and .checkpoint are imported where used: with torch.distributed.tensor they
# cost every command that reads a run config 1.5 s
TIMEOUT = timedelta(minutes=10)  # a collective that waits longer than this ends the job


@dataclass(frozen=True)
class Job:
    """This process's place among the processes of one run (one process, world 1, outside torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def join(cls, device: torch.device) -> tuple["Job", torch.device]:
        """Join torchrun's process group when started by torchrun (gloo on CPU, nccl on CUDA); return the
        job and the device this process trains on (its own GPU)."""
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:  # torchrun sets both
            return cls(), device
        job = cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
        if device.type == "cuda":
            device = torch.device("cuda", job.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if backend == "nccl" else None)
        return job, device

    @property
    def main(self) -> bool:
        """Whether this process logs, shows progress and writes single files."""
        return self.rank == 0

    @property
    def joined(self) -> bool:
        return dist.is_initialized()

    def leave(self) -> None:
        """Leave the process group (the run is over, or failed)."""
        if self.joined:
            dist.destroy_process_group()

    def micro_batches(self, accumulate: int) -> range:
        """Return which of a step's ``accumulate`` micro-batches this process computes."""
        if accumulate % self.world:
            raise ConfigError(
                f"train.accumulate {accumulate} is not a multiple of the {self.world} processes: a step's "
                f"micro-batches are shared out among them; set train.accumulate to a multiple of "
                f"{self.world} (lower train.batch_size to keep the examples per step)"
            )
        share = accumulate // self.world
        return range(self.rank * share, (self.rank + 1) * share)

    def sum(self, values: list[float]) -> list[float]:
        """Return ``values`` added up over every process (in float64)."""
        if not self.joined:
            return values
        found = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(found)
        return found.tolist()

    def gather(self, value: Any) -> list[Any]:
        """Return every process's ``value`` (picklable), by rank."""
        if not self.joined:
            return [value]
        found: list[Any] = [None] * self.world
        dist.all_gather_object(found, value)
        return found

    def broadcast(self, value: Any) -> Any:
        """Return rank 0's ``value`` (picklable) in every process."""
        if not self.joined:
            return value
        found = [value]
        dist.broadcast_object_list(found, src=0)
        return found[0]

    def sharded(self, model: nn.Module) -> bool:
        """Whether ``model`` is sharded by FSDP (``wrap`` with strategy fsdp)."""
        return self.joined and _sharded(model)

    def norm(self, found: torch.Tensor) -> float:
        """Return a gradient norm as a float: under FSDP, a DTensor over the processes' shards."""
        if not self.joined:
            return float(found)
        from torch.distributed.tensor import DTensor

        return float(found.full_tensor() if isinstance(found, DTensor) else found)

    def barrier(self) -> None:
        if self.joined:
            dist.barrier()

    def wrap(self, model: nn.Module, strategy: Strategy, precision: Precision) -> nn.Module:
        """Return the module the training step calls: ``model`` under DDP, or ``model`` itself sharded by
        FSDP2 (``fully_shard`` per block, then the rest), computing in bf16 with ``precision: bf16``."""
        if not self.joined:
            return model
        if strategy == "ddp":
            return _Replica(model)
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if precision == "bf16" else None, reduce_dtype=torch.float32
        )
        blocks = [module for module in model.modules() if isinstance(module, Block)]
        _refuse_shared_weights(model, blocks)
        for block in blocks:
            fully_shard(block, mp_policy=policy, reshard_after_forward=True)
        # the root's weights are gathered again at once by the backward: kept whole until then
        fully_shard(model, mp_policy=policy, reshard_after_forward=False)
        return model

    @contextlib.contextmanager
    def accumulating(self, replica: nn.Module, last: bool) -> Iterator[None]:
        """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP) of every micro-batch but a step's
        last: gradients accumulate locally and are reduced once.

        Under FSDP the model's own weights (embeddings, heads: all but the blocks') are gathered first,
        as tasks call its heads beside ``forward`` (ELECTRA's generator before it); they stay whole until
        the backward has used them."""
        if isinstance(replica, _Replica) and not last:
            with replica.no_sync():
                yield
            return
        if self.sharded(replica):
            # FSDP2 settles which module is the root at the root's first forward (pytorch/pytorch#117881);
            # a head called before it (ELECTRA's generator) needs that done; a no-op afterwards
            replica._get_fsdp_state()._lazy_init()
            replica.set_requires_gradient_sync(last)
            replica.unshard()
        yield

    @contextlib.contextmanager
    def evaluating(self, replica: nn.Module) -> Iterator[nn.Module]:
        """Yield the module evaluation runs, with no collective in its forward: DDP's inner module, or
        the FSDP model gathered whole in every process until the end (generation runs as many forwards
        as its hypotheses need, which differs from one process's batches to another's)."""
        if isinstance(replica, _Replica) or not self.joined:
            yield replica.module if isinstance(replica, _Replica) else replica
            return
        sharded = [module for module in replica.modules() if _sharded(module)]
        for module in sharded:
            module.set_reshard_after_forward(False, recurse=False)
            module.unshard()
        try:
            yield replica
        finally:
            for module in sharded:
                module.reshard()
                module.set_reshard_after_forward(module is not replica, recurse=False)  # as ``wrap`` set

    def own_rng(self, state: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
        """Return the generator states this process resumes with: its own from a checkpoint of as many
        processes, rank 0's from any other (single-process states are rank 0's); other ranks of a run
        of another size, or starting, get states seeded by (seed, rank, step)."""
        saved = state.get("rank_rng") or ([state["rng"]] if "rng" in state else [])
        if len(saved) == self.world or (self.main and saved):
            return saved[self.rank]
        fresh = torch.Generator().manual_seed(
            int(np.random.SeedSequence(seed, spawn_key=(self.rank, state["step"])).generate_state(1)[0])
        )
        return {"cpu": fresh.get_state()}


def _sharded(module: nn.Module) -> bool:
    """Whether FSDP2's ``fully_shard`` has made ``module`` one of its units."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def _refuse_shared_weights(model: nn.Module, blocks: list[nn.Module]) -> None:
    """Refuse a model whose blocks share a weight (layer-wise Linformer projections): FSDP shards each
    block's weights as its own, and a weight in two blocks cannot be either's alone."""
    owner = {id(block): index for index, block in enumerate(blocks)}
    seen: dict[int, tuple[int, str]] = {}
    for name, module in model.named_modules():
        if id(module) not in owner:
            continue
        for weight_name, weight in module.named_parameters():
            block, first = seen.setdefault(id(weight), (owner[id(module)], f"{name}.{weight_name}"))
            if block != owner[id(module)]:
                raise ConfigError(
                    f"train.strategy fsdp: blocks share the weight {first} (also {name}.{weight_name}), e.g. "
                    f"layer-wise Linformer projections, and FSDP shards each block's weights as its own; "
                    f"use train.strategy ddp, or a model whose blocks share nothing"
                )


class _Replica(nn.parallel.DistributedDataParallel):
    """DDP whose wrapper also answers for the model's own methods and attributes (its heads, e.g.
    ``mlm_logits``, that tasks call beside ``forward``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":  # not set yet (DDP's own __init__)
                raise
            return getattr(self.module, name)


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def launch(nproc: int, accumulate: int, args: list[str]) -> None:
    """Run ``linctl train ARGS`` as a torchrun job of ``nproc`` processes on this machine (a run of
    ``train.accumulate`` ``accumulate``); raise RankFailed naming the first process that died or failed."""
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: the number of processes must be at least 1")
    Job(0, nproc).micro_batches(accumulate)  # refused here, not once per process
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # the one-line error below says what torchrun's log lines would (which process failed, and how);
    # each of its modules' loggers has its own level
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        run_id=f"linctl-{os.getpid()}",
        max_restarts=0,
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "linctl", "train", *args)
    except SignalException as exc:  # Ctrl-C or SIGTERM: torchrun passed it on, each process said so
        raise RankFailed("", 128 + exc.sigval) from None
    except ChildFailedError as exc:
        # the others, stopped by torchrun, failed too (SIGTERM): name the one that failed first
        first = {r: f for r, f in exc.failures.items() if f.exitcode != -signal.SIGTERM} or exc.failures
        rank, failure = min(first.items(), key=lambda item: (item[1].timestamp, item[0]))
        if failure.exitcode == EXIT_REFUSED:  # the process printed its one-line error itself
            raise RankFailed("", EXIT_REFUSED) from None
        killed = failure.exitcode < 0
        how = f"was killed by {failure.signal_name()}" if killed else f"exited {failure.exitcode}"
        raise RankFailed(
            f"process {rank} of {nproc} {how}; torchrun stopped the others; finished checkpoints are kept, "
            f"run the same command again to resume from the newest",
            1,
        ) from None


EXIT_REFUSED = 2  # how a process exits on a LinctlError (bad data, a damaged checkpoint)
