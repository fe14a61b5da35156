"""The library side of `linctl compile`: config reading, output folders, export and its failures."""

import inspect
import signal
from pathlib import Path

import pytest
import torch
from pydantic import TypeAdapter
from torch import Tensor, nn

from linctl.errors import ConfigError, InputError, OutputError
from linctl.export.compile import (
    DEFAULT_BATCH,
    REPORT,
    build_model,
    claim_output,
    example_inputs,
    export_model,
    graph_stats,
    read_source,
    trace_batch,
)
from linctl.models import MODELS, ModelSpec
from linctl.train import checkpoint

REPO = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


class Branchy(nn.Module):
    """Branches in Python on a tensor's value: torch.export cannot trace that."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        if attention_mask.sum() > 3:
            return input_ids.float()
        return -input_ids.float()


@torch.library.custom_op("linctl_test::opaque", mutates_args=())
def opaque(x: Tensor) -> Tensor:
    """An operator without a fake (meta) implementation: export cannot infer its output shape."""
    return x.clone()


class Opaque(nn.Module):
    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return opaque(input_ids.float()) * attention_mask


class Swallowing(nn.Module):
    """Is sent ``signum`` while traced and catches what its handler raises, as torch's argument parsing does.

    Seen in the fault suite: a Ctrl-C during torch.export came out as "TypeError: new_empty(): argument
    'size' failed to unpack …". ``goes_on`` makes it drop the signal and return, as torch does elsewhere.
    """

    def __init__(self, signum: int, goes_on: bool = False) -> None:
        super().__init__()
        self.signum, self.goes_on = signum, goes_on

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        try:
            signal.raise_signal(self.signum)
        except BaseException as exc:
            if not self.goes_on:
                raise TypeError(f"argument 'size' failed to unpack: {type(exc).__name__}") from exc
        return input_ids.float() * attention_mask


class Stopped(BaseException):
    """What the test's SIGTERM handler raises (the CLI's raises Terminated)."""


def line_of(method, text: str) -> int:
    lines, first = inspect.getsourcelines(method)
    return first + next(i for i, line in enumerate(lines) if text in line)


def test_data_dependent_branch_names_the_file_line_and_module():
    with pytest.raises(ConfigError) as err:
        export_model(Branchy(), example_inputs(short_encoder(), 3, CPU, seed=0))
    message = str(err.value)
    assert "\n" not in message
    assert "data-dependent control flow" in message
    line = line_of(Branchy.forward, "if attention_mask.sum()")
    assert f"test_compile.py:{line} in forward (Branchy)" in message
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # export put its handler back


def test_operator_without_fake_kernel_names_the_operator_and_line():
    with pytest.raises(ConfigError) as err:
        export_model(Opaque(), example_inputs(short_encoder(), 3, CPU, seed=0))
    message = str(err.value)
    assert "\n" not in message and "linctl_test::opaque" in message
    assert f"test_compile.py:{line_of(Opaque.forward, 'opaque(')} in forward (Opaque)" in message


@pytest.mark.parametrize("goes_on", [False, True], ids=["error", "swallowed"])
def test_ctrl_c_during_tracing_stops_the_export_whatever_torch_makes_of_it(goes_on):
    with pytest.raises(KeyboardInterrupt):
        export_model(Swallowing(signal.SIGINT, goes_on), example_inputs(short_encoder(), 3, CPU, seed=0))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_during_tracing_raises_what_its_handler_raises():
    def stop(signum, frame):
        raise Stopped

    before = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stopped):
            export_model(Swallowing(signal.SIGTERM), example_inputs(short_encoder(), 3, CPU, seed=0))
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, before)


def tiny_encoder(**kw):
    sizes = dict(kind="encoder", vocab_size=97, d_model=32, n_heads=4, n_layers=2, d_ff=64, max_seq_length=16)
    attention = {"attention": {"kind": "linformer", "k": 7}}
    return TypeAdapter(ModelSpec).validate_python(sizes | attention | kw)


def short_encoder():
    """Inputs of 5 tokens from a vocabulary of 11."""
    return tiny_encoder(vocab_size=11, max_seq_length=5, attention={"kind": "softmax"})


def test_exported_encoder_serves_other_batch_sizes_and_is_counted():
    model = MODELS.build(tiny_encoder()).eval()
    exported = export_model(model, example_inputs(model.cfg, 3, CPU, seed=0))
    for batch in (1, 5):
        inputs = example_inputs(model.cfg, batch, CPU, seed=batch)  # (B, T) each
        with torch.no_grad():
            torch.testing.assert_close(exported.module()(*inputs.values()), model(**inputs).hidden)
    stats = graph_stats(exported)
    assert stats["nodes"] > stats["call_function"] >= sum(stats["aten_ops"].values()) > 0
    assert stats["aten_ops"]["aten.scaled_dot_product_attention.default"] == 2  # one per layer


def test_example_mask_is_padded_but_never_empty():
    inputs = example_inputs(tiny_encoder(), 5, CPU, seed=0)
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert list(inputs) == ["input_ids", "attention_mask"]
    assert ids.shape == mask.shape == (5, 16) and mask.dtype == torch.bool
    lengths = mask.sum(1)
    assert lengths[0] == 16 and lengths[-1] == 8 and bool((lengths >= 1).all())
    assert bool((mask == (torch.arange(16) < lengths[:, None])).all())  # real tokens first


def test_run_config_gives_its_batch_seed_and_model_dir():
    source = read_source(REPO / "configs/mlm/tiny.yaml", ["train.seed=7", "model_dir=elsewhere"])
    assert (source.batch_size, source.seed, source.output) == (3, 7, Path("elsewhere/compiled"))
    assert source.model.attention.kind == "linformer"
    assert trace_batch(None, source) == 3 and trace_batch(1, source) == 2  # size 1 is traced as 2


def test_model_file_is_read_for_its_model_section_only():
    source = read_source(REPO / "configs/bench/tiny.yaml", [])
    assert (source.batch_size, source.seed, source.output) == (None, 0, Path("compiled/tiny"))
    assert trace_batch(None, source) == DEFAULT_BATCH


def test_model_file_problems_name_the_file_and_key(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("model: {kind: encoder, vocab_size: 0, d_model: 32, n_heads: 4, colour: red}\n")
    with pytest.raises(ConfigError) as err:
        read_source(path, [])
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{path}: model.") for line in lines)
    assert any("model.vocab_size = 0" in line for line in lines)
    assert any("model.colour: unknown key" in line for line in lines)


def test_file_without_model_section_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("seq_len: 512\n")
    with pytest.raises(ConfigError, match="no model section"):
        read_source(path, [])


def test_existing_output_is_refused_unless_forced(tmp_path):
    out = tmp_path / "pkg"
    out.mkdir()
    stray = tmp_path / "pkg.tmp-99999"  # what a killed compile leaves
    stray.mkdir()
    with pytest.raises(OutputError, match="--force"):
        claim_output(out, force=False)
    claim_output(out, force=True)  # an empty folder
    assert out.is_dir() and not stray.exists()  # replaced only once the new package is complete
    (out / REPORT).write_text("{}\n")
    claim_output(out, force=True)  # an earlier package


def test_force_never_replaces_a_folder_that_is_not_a_package(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(OutputError, match="not a package of linctl compile"):
        claim_output(tmp_path, force=True)


def test_checkpoint_weights_are_loaded_and_another_models_refused(tmp_path):
    cfg = tiny_encoder()
    torch.manual_seed(5)
    trained = MODELS.build(cfg)
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    config = {"model": cfg.model_dump(mode="json")}
    found = checkpoint.save(tmp_path, 4, trained, optimizer, {"step": 4}, config, {}, keep=1)
    model = build_model(cfg, CPU, seed=0, checkpoint=found)
    assert not model.training
    for (name, ours), theirs in zip(model.state_dict().items(), trained.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    with pytest.raises(ConfigError, match="d_ff: 64 there, 48 here"):
        build_model(tiny_encoder(d_ff=48), CPU, seed=0, checkpoint=found)
    with pytest.raises(InputError, match="no such folder"):
        build_model(cfg, CPU, seed=0, checkpoint=tmp_path / "checkpoint-00000008")
