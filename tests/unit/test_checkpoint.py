"""Checkpoints: one complete folder per step or none, the newest found, old ones pruned, leftovers of a
save that died removed, weights and optimizer state read back exactly, another model's refused."""

import errno
import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from linctl.errors import ConfigError, InputError, OutputError
from linctl.models import MODELS
from linctl.models.file import read_model
from linctl.train import checkpoint
from linctl.train.optim import OptimConfig, build_optimizer

TINY = Path(__file__).resolve().parents[2] / "configs" / "mlm" / "tiny.yaml"
MODEL = read_model(TINY).model_dump(mode="json")  # as a run config's dump holds it
CONFIG = {"model": MODEL, "train": {"steps": 12}}


def tiny_model(seed: int, overrides: tuple[str, ...] = ()) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """configs/mlm/tiny.yaml's encoder and its AdamW, after one update with seeded random gradients."""
    torch.manual_seed(seed)
    model = MODELS.build(read_model(TINY, overrides))
    optimizer = build_optimizer(model, OptimConfig(lr=1e-2))
    update(model, optimizer, seed)
    return model, optimizer


def update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    """One optimizer step with gradients drawn from ``seed`` (the same for equal parameter shapes)."""
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=generator)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def save(model_dir: Path, step: int, model=None, optimizer=None, files=None, keep: int = 3) -> Path:
    """Save ``step``: of ``model`` and ``optimizer``, or of a tiny model seeded by the step."""
    if model is None:
        model, optimizer = tiny_model(step)
    state = {"step": step, "rng": {"cpu": torch.get_rng_state()}}
    return checkpoint.save(model_dir, step, model, optimizer, state, CONFIG, files or {}, keep)


def test_a_checkpoint_is_one_folder_named_by_its_step_with_everything_to_resume(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n")
    model, optimizer = tiny_model(0)
    rng = torch.get_rng_state()
    state = {"step": 7, "rng": {"cpu": rng}, "micro_batches": 14}
    found = checkpoint.save(tmp_path / "m", 7, model, optimizer, state, CONFIG, {"vocab.txt": vocab}, 3)
    assert found == tmp_path / "m" / "checkpoint-00000007"
    assert sorted(p.name for p in found.iterdir()) == [
        "config.yaml", "model.safetensors", "optimizer.pt", "trainer_state.json", "vocab.txt"
    ]  # fmt: skip
    assert [p.name for p in (tmp_path / "m").iterdir()] == [found.name]  # nothing else, no temporary folder
    assert (found / "vocab.txt").read_bytes() == vocab.read_bytes()
    back = checkpoint.read_state(found)
    assert (back["step"], back["micro_batches"]) == (7, 14) and torch.equal(back["rng"]["cpu"], rng)
    assert checkpoint.read_config(found) == CONFIG
    assert yaml.safe_load((found / "config.yaml").read_text()) == CONFIG  # readable by people too


def test_latest_is_the_newest_complete_checkpoint(tmp_path):
    assert checkpoint.latest(tmp_path / "absent") is None and checkpoint.latest(tmp_path) is None
    model, optimizer = tiny_model(0)
    for step in (99_999_999, 8, 100_000_000):  # past eight digits, names no longer sort as numbers
        save(tmp_path, step, model, optimizer)
    assert checkpoint.latest(tmp_path) == tmp_path / "checkpoint-100000000"
    (tmp_path / "checkpoint-100000002.tmp-4242").mkdir()  # a save not finished is not a checkpoint
    (tmp_path / "notes-100000003").mkdir()
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == [
        "checkpoint-00000008", "checkpoint-99999999", "checkpoint-100000000"
    ]  # fmt: skip
    # under its final name a folder was complete: one damaged since is listed, to be refused when read,
    # not skipped for an older one
    (tmp_path / "checkpoint-100000001").mkdir()
    assert checkpoint.latest(tmp_path) == tmp_path / "checkpoint-100000001"


def test_only_the_newest_keep_checkpoints_stay(tmp_path):
    model, optimizer = tiny_model(0)
    for step in (2, 4, 6, 8, 10):
        save(tmp_path, step, model, optimizer, keep=2)
        kept = [p.name for p in checkpoint.checkpoints(tmp_path)]
        assert kept == [f"checkpoint-{s:08d}" for s in (step - 2, step) if s > 0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000008", "checkpoint-00000010"]


def test_a_save_that_fails_leaves_the_last_complete_checkpoint_and_a_killed_one_is_removed(tmp_path):
    before = save(tmp_path, 4)
    with pytest.raises(OutputError, match=r"No such file or directory: .*gone\.txt"):  # after the weights
        save(tmp_path, 8, files={"vocab.txt": tmp_path / "gone.txt"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000004"]  # nothing half written
    assert checkpoint.latest(tmp_path) == before
    killed = tmp_path / "checkpoint-00000008.tmp-12345"  # what a kill -9 mid-save leaves
    killed.mkdir()
    (killed / "model.safetensors").write_bytes(b"half")
    assert checkpoint.latest(tmp_path) == before
    (tmp_path / "notes.txt").write_text("mine\n")
    checkpoint.remove_partial(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000004", "notes.txt"]
    assert save(tmp_path, 8) == checkpoint.latest(tmp_path)  # the step is saved again in full


def test_saving_a_step_again_replaces_its_folder(tmp_path):
    # A run killed between the rename and the pruning saves the same step again when it resumes.
    save(tmp_path, 4, *tiny_model(1))
    model, optimizer = tiny_model(2)
    found = save(tmp_path, 4, model, optimizer)
    loaded, _ = tiny_model(3)
    checkpoint.load_weights(loaded, found)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_weights_and_optimizer_state_read_back_to_the_same_next_step(tmp_path):
    model, optimizer = tiny_model(0)
    found = save(tmp_path, 1, model, optimizer)
    fresh, fresh_optimizer = tiny_model(1)
    checkpoint.load_weights(fresh, found)
    checkpoint.load_optimizer(fresh_optimizer, found, torch.device("cpu"))
    update(model, optimizer, seed=5)
    update(fresh, fresh_optimizer, seed=5)  # Adam's moments decide this step: they must be restored too
    ours, theirs = model.state_dict(), fresh.state_dict()
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_weights_of_another_shape_or_no_weights_are_refused(tmp_path):
    found = save(tmp_path, 1)
    wider, _ = tiny_model(0, ("model.d_ff=48",))
    with pytest.raises(InputError, match=r"model.safetensors: weights do not fit this model"):
        checkpoint.load_weights(wider, found)
    (found / "model.safetensors").unlink()
    with pytest.raises(InputError, match=r"model\.safetensors is missing"):
        checkpoint.load_weights(wider, found)


def test_check_model_refuses_another_model_config_naming_each_difference(tmp_path):
    found = save(tmp_path, 1)
    checkpoint.check_model(found, MODEL)  # the same model passes
    other = {key: value for key, value in MODEL.items() if key != "dropout"} | {"d_ff": 48, "n_layers": 3}
    with pytest.raises(ConfigError) as err:
        checkpoint.check_model(found, other)
    message = str(err.value)
    assert message.startswith(f"{found} is a checkpoint of another model (")
    assert "d_ff: 64 there, 48 here" in message and "n_layers: 2 there, 3 here" in message
    assert "dropout: 0.1 there, unset here" in message and "n_heads" not in message
    assert "use another model_dir or the checkpoint's model config" in message


def test_a_folder_that_is_not_a_checkpoint_is_named(tmp_path):
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: not a linctl checkpoint (no config.yaml)")):
        checkpoint.check_model(tmp_path, MODEL)


def test_a_disk_that_fills_during_a_save_leaves_no_temporary_folder_and_names_the_checkpoint(
    tmp_path, monkeypatch
):
    before = save(tmp_path, 4)
    model, optimizer = tiny_model(8)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OutputError) as err:
        save(tmp_path, 8, model, optimizer)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {tmp_path / 'checkpoint-00000008'} could not be written (")
    assert os.strerror(errno.ENOSPC) in message and f"the newest checkpoint is {before}" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-00000004"]  # no .tmp-PID folder


@pytest.mark.parametrize(
    ("name", "content", "wrong"),
    [
        ("trainer_state.json", None, "is missing"),
        ("trainer_state.json", b"[1, 2", "is not valid JSON ("),
        ("trainer_state.json", b'{"rng": {}}', "is not a trainer state"),
        ("trainer_state.json", b'{"step": 1, "rng": {"cpu": 7}}', "is not a trainer state (rng"),
        ("config.yaml", b"model: [\n", "is not valid YAML ("),
        ("config.yaml", b"- 1\n", "is not a run config (a mapping), but list"),
        ("optimizer.pt", b"PK\x03\x04", "is truncated or not a torch file"),
        ("model.safetensors", b"\x08", "is truncated or not a safetensors file ("),
    ],
    ids=[
        "state-missing",
        "state-not-json",
        "state-not-a-state",
        "state-bad-rng",
        "config-not-yaml",
        "config-not-mapping",
        "optimizer-truncated",
        "weights-truncated",
    ],
)
def test_every_checkpoint_file_is_read_through_one_reader_that_names_it(tmp_path, name, content, wrong):
    found = save(tmp_path, 1)
    if content is None:
        (found / name).unlink()
    else:
        (found / name).write_bytes(content)
    model, optimizer = tiny_model(0)
    readers = {
        "trainer_state.json": lambda: checkpoint.read_state(found),
        "config.yaml": lambda: checkpoint.read_config(found),
        "optimizer.pt": lambda: checkpoint.load_optimizer(optimizer, found, torch.device("cpu")),
        "model.safetensors": lambda: checkpoint.load_weights(model, found),
    }
    with pytest.raises(InputError) as err:
        readers[name]()
    message = str(err.value)
    assert message.startswith(f"checkpoint file {found / name} {wrong}") and "\n" not in message
    assert message.endswith(f"delete the checkpoint folder {found} to use the one before it, or train again")
