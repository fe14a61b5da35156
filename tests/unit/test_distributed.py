"""What each process of a torchrun job computes, and which generator states it resumes with (no process
group needed: tests/cli/test_train_distributed.py runs the jobs)."""

from pathlib import Path

import pytest
import torch

from linctl.errors import ConfigError
from linctl.models import MODELS
from linctl.models.file import read_model
from linctl.models.layers import Block
from linctl.train.distributed import Job, _refuse_shared_weights

TINY = Path(__file__).resolve().parents[2] / "configs" / "mlm" / "tiny.yaml"


@pytest.mark.parametrize(("world", "accumulate"), [(1, 3), (2, 2), (2, 8), (4, 8)])
def test_the_processes_share_out_a_step_s_micro_batches_in_order(world, accumulate):
    shares = [Job(rank, world).micro_batches(accumulate) for rank in range(world)]
    assert [index for share in shares for index in share] == list(range(accumulate))
    assert len({len(share) for share in shares}) == 1


def test_an_accumulate_the_processes_cannot_share_is_refused():
    with pytest.raises(ConfigError, match=r"train.accumulate 3 is not a multiple of the 2 processes"):
        Job(1, 2).micro_batches(3)


def test_generator_states_of_a_resumed_process():
    states = [{"cpu": torch.Generator().manual_seed(seed).get_state()} for seed in (1, 2)]
    two = {"step": 8, "rng": states[0], "rank_rng": states}
    assert torch.equal(Job(1, 2).own_rng(two, seed=0)["cpu"], states[1]["cpu"])  # its own
    one = {"step": 8, "rng": states[0]}  # one process's checkpoint
    assert torch.equal(Job(0, 2).own_rng(one, seed=0)["cpu"], states[0]["cpu"])
    fresh = Job(1, 2).own_rng(one, seed=0)["cpu"]  # seeded by (seed, rank, step): the same every time
    assert torch.equal(fresh, Job(1, 2).own_rng(one, seed=0)["cpu"])
    assert not torch.equal(fresh, Job(1, 2).own_rng({**one, "step": 9}, seed=0)["cpu"])
    assert torch.equal(Job(0, 4).own_rng(two, seed=0)["cpu"], states[0]["cpu"])  # 2 processes, now 4


def test_fsdp_refuses_weights_shared_among_blocks():
    def refuse(model):
        _refuse_shared_weights(model, [module for module in model.modules() if isinstance(module, Block)])

    layerwise = MODELS.build(read_model(TINY, ["model.attention.sharing=layerwise"]))  # one E for all
    with pytest.raises(ConfigError, match=r"share the weight blocks\.0\.attention\.projections\.e_proj"):
        refuse(layerwise)
    refuse(MODELS.build(read_model(TINY)))  # key-value sharing: one projection per block, its own
