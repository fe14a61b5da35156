"""Ahead-of-time compilation of a config's model: torch.export, then AOTInductor, into a package folder.

The folder holds ``model.pt2`` (load it with ``torch._inductor.aoti_load_package``; call it with the
model's inputs positionally, in the order ``compile-report.json`` lists them — an encoder's
``input_ids`` (B, T) int64 and ``attention_mask`` (B, T) bool, True at real tokens — T the model's
``max_seq_length`` and B from 1 to ``MAX_BATCH``; the package checks these shapes only when
``AOTI_RUNTIME_CHECK_INPUTS=1`` is set), ``compile-report.json`` and ``config.yaml`` (the model
section, so the package describes itself). The folder is written under a temporary name beside its
final one and renamed into place when complete.
"""

import collections
import contextlib
import io
import json
import signal
import sys
import sysconfig
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.export import ExportedProgram
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

import linctl
from linctl.atomic import TMP_MARK, atomic_folder, check_writable_folder, remove
from linctl.config.load import apply_overrides, read_yaml, validate
from linctl.errors import ConfigError, InputError, LinctlError, OutputError
from linctl.models import MODELS
from linctl.models.file import read_model
from linctl.runtime.device import Backend
from linctl.train import checkpoint as checkpoints
from linctl.train.config import RunConfig, config_schema

MAX_BATCH = 4096  # upper bound of the dynamic batch dimension
DEFAULT_BATCH = 8  # traced batch when neither --batch-size nor the config's train.batch_size gives one
TOLERANCE = 1e-4  # float32: largest |compiled - eager| that --check accepts
PACKAGE, REPORT, CONFIG = "model.pt2", "compile-report.json", "config.yaml"
SCHEMA_VERSION = 1  # of compile-report.json

_PACKAGE_DIR = Path(linctl.__file__).resolve().parent
_LIBRARY_DIRS = tuple(
    Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")
)


@dataclass(frozen=True)
class Source:
    """The model a config describes, and what the config says about compiling it."""

    path: Path
    model: Any  # a ModelSpec member, e.g. EncoderModel.Config
    batch_size: int | None  # a run config's train.batch_size
    seed: int  # a run config's train.seed, else 0
    output: Path  # where the package goes unless --output-dir says otherwise


@dataclass(frozen=True)
class CompileResult:
    """A finished package: its folder and the contents of its compile-report.json."""

    output: Path
    report: dict[str, Any]
    already_complete: bool = False  # the folder held this package already: nothing was compiled


def read_source(path: Path, overrides: list[str]) -> Source:
    """Read a run config (validated whole) or any YAML with a ``model:`` section (only that validated).

    A run config's package defaults to ``<model_dir>/compiled``; any other file's to
    ``compiled/<file stem>``.
    """
    data = apply_overrides(read_yaml(path), overrides)
    if config_schema(path, data) is RunConfig and "model" in data:
        run = validate(RunConfig, data, str(path))
        return Source(Path(path), run.model, run.train.batch_size, run.train.seed, run.model_dir / "compiled")
    return Source(Path(path), read_model(path, overrides), None, 0, Path("compiled") / Path(path).stem)


def trace_batch(batch_size: int | None, source: Source) -> int:
    """Return the batch size of the example inputs: --batch-size, the config's, else ``DEFAULT_BATCH``.

    torch.export specialises dimensions of size 1, so a batch of 1 is traced as 2; the batch dimension
    of the package is dynamic either way.
    """
    batch = batch_size or source.batch_size or DEFAULT_BATCH
    if batch > MAX_BATCH:
        raise ConfigError(
            f"batch size {batch} is larger than the largest batch a package serves ({MAX_BATCH}); "
            f"give --batch-size {MAX_BATCH} or less"
        )
    return max(batch, 2)


def claim_output(
    output: Path, force: bool, request: dict[str, Any] | None = None, check: bool = False
) -> dict[str, Any] | None:
    """Refuse an existing ``output`` unless ``force``; delete temporary folders a killed compile left.

    A package compiled from the same ``request`` (the report's fields that do not depend on the run;
    with ``check``, a checked one) is no reason to refuse: its report is returned, and the rerun of a
    finished compile does nothing.
    Even ``force`` replaces only an earlier package or an empty folder, never another kind of folder.
    """
    check_writable_folder(output, "--output-dir")
    for stray in output.parent.glob(f"{output.name}{TMP_MARK}*"):
        remove(stray)
    if not output.exists():
        return None
    if not (output / REPORT).is_file() and (output.is_file() or any(output.iterdir())):
        raise OutputError(
            f"{output} exists and is not a package of linctl compile (no {REPORT}); "
            f"{'--force replaces only those: ' if force else ''}choose another --output-dir"
        )
    if force:
        return None
    earlier = _read_report(output / REPORT) if (output / REPORT).is_file() else {}
    differing = [key for key, value in (request or {}).items() if earlier.get(key) != value]
    if check and earlier.get("check") is None:
        differing.append("check")
    if request is not None and not differing:
        return earlier
    if request is not None and len(differing) < len(request):  # a package made by another request
        raise OutputError(
            f"{output} holds a package compiled with another {', '.join(differing)}; "
            f"choose another --output-dir, or add --force to replace it"
        )
    raise OutputError(f"{output} exists; choose another --output-dir, or add --force to replace it")


def _read_report(path: Path) -> dict[str, Any]:
    """Return an earlier package's report, or {} when it cannot be read as one."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return report if isinstance(report, dict) else {}


def build_model(model_cfg: Any, device: torch.device, seed: int, checkpoint: Path | None) -> nn.Module:
    """Return the fp32 model in eval mode on ``device``: initialised from ``seed``, or a checkpoint's weights.

    A checkpoint must have been written for the same model config (``linctl.train.checkpoint``).
    """
    if checkpoint is not None:
        if not Path(checkpoint).is_dir():
            raise InputError(f"--checkpoint {checkpoint}: no such folder; give a checkpoint-NNNNNNNN folder")
        checkpoints.check_model(checkpoint, model_cfg.model_dump(mode="json"))
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        checkpoints.load_weights(model, checkpoint)
    return model.to(device=device, dtype=torch.float32).eval()


def example_inputs(model_cfg: Any, batch: int, device: torch.device, seed: int) -> dict[str, Tensor]:
    """Return the model's random inputs of ``batch`` sequences of its ``max_seq_length``, padded.

    The first sequence is full, the last half as long (when B > 1) and the others of random lengths.
    """
    T = model_cfg.max_seq_length
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (batch,), generator=gen)  # (B,)
    lengths[0] = T
    if batch > 1:
        lengths[-1] = max(1, T // 2)
    inputs = model_cfg.example_inputs(batch, T, lengths=lengths.tolist(), generator=gen)
    return {name: tensor.to(device) for name, tensor in inputs.items()}


class Served(nn.Module):
    """What a package runs: the model on its inputs in a fixed order, returning one tensor (the logits
    of a model whose forward makes them, else the hidden states)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: Tensor) -> Tensor:
        out = self.model(**dict(zip(self.names, inputs, strict=True)))
        return out if isinstance(out, Tensor) else out.primary


def export_model(model: nn.Module, inputs: dict[str, Tensor]) -> ExportedProgram:
    """Export ``model(**inputs)`` with a dynamic batch dimension and a static length.

    The program takes the inputs positionally, in the order of ``inputs``. A failure is a ConfigError
    naming the error and where the model's code hit it.
    """
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic = (tuple({0: batch} for _ in inputs),)
    served = Served(model, tuple(inputs))
    # torch prints the partial graph of a failed export to stderr; the one-line error replaces it.
    printed = io.StringIO()
    try:
        with _stops_kept(), contextlib.redirect_stderr(printed):
            exported = torch.export.export(served, tuple(inputs.values()), dynamic_shapes=dynamic)
    except Exception as exc:
        if isinstance(exc, LinctlError):
            raise
        raise ConfigError(_export_failure(exc, model)) from exc
    sys.stderr.write(printed.getvalue())
    return exported


def graph_stats(exported: ExportedProgram) -> dict[str, Any]:
    """Return the size of an exported graph: nodes, call_function nodes and a histogram of aten ops."""
    nodes = list(exported.graph.nodes)
    calls = [node for node in nodes if node.op == "call_function"]
    ops = collections.Counter(
        str(node.target)
        for node in calls
        if isinstance(node.target, torch._ops.OpOverload) and node.target.namespace == "aten"
    )
    return {"nodes": len(nodes), "call_function": len(calls), "aten_ops": dict(ops.most_common())}


def compile_package(exported: ExportedProgram, package: Path) -> None:
    """AOT-compile an exported program into a ``.pt2`` package with AOTInductor."""
    try:
        with _stops_kept():
            torch._inductor.aoti_compile_and_package(
                exported,
                package_path=str(package),
                # The batch dimension is traced from a size >= 2, but the code serves 1 as well: let the
                # package's optional input checks (AOTI_RUNTIME_CHECK_INPUTS=1) accept it.
                inductor_configs={"aot_inductor.check_lowerbound": False},
            )
    except Exception as exc:
        raise ConfigError(f"AOTInductor could not compile the exported model: {_first_line(exc)}") from exc


def check_package(package: Path, model: nn.Module, inputs: dict[str, Tensor]) -> float:
    """Return the largest |compiled - eager| of the package and the eager model on ``inputs``."""
    runner = torch._inductor.aoti_load_package(str(package))
    with torch.no_grad():
        compiled, eager = runner(*inputs.values()), Served(model, tuple(inputs))(*inputs.values())
    return float((compiled - eager).abs().max())


def compile_config(
    config: Path,
    overrides: list[str],
    backend: Backend,
    *,
    output: Path | None = None,
    force: bool = False,
    check: bool = False,
    batch_size: int | None = None,
    checkpoint: Path | None = None,
    progress: Callable[[str], None] = lambda stage: None,
) -> CompileResult:
    """Compile a config's model for ``backend`` into a package folder; see the module docstring.

    Args:
        progress: called with each stage's name as it starts.
    """
    source = read_source(config, overrides)
    target = Path(output) if output is not None else source.output
    cfg = source.model
    batch = trace_batch(batch_size, source)
    inputs = example_inputs(cfg, batch, backend.device, source.seed)
    request = {  # what the package is made from; a package of the same request is already complete
        "linctl": linctl.__version__,
        "torch": torch.__version__,
        "backend": backend.name,
        "compile_path": backend.compile_path,
        "config": str(config),
        "overrides": list(overrides),
        "weights": f"checkpoint {checkpoint}" if checkpoint else f"initialised with seed {source.seed}",
        "dtype": "float32",
        "model": cfg.model_dump(mode="json"),
        "inputs": {  # in the order the package takes them
            name: {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
            for name, tensor in inputs.items()
        },
        "dynamic_dims": {"batch": {"min": 1, "max": MAX_BATCH, "inputs": dict.fromkeys(inputs, 0)}},
    }
    earlier = claim_output(target, force, request, check)
    if earlier is not None:
        return CompileResult(target, earlier, already_complete=True)
    times: dict[str, float] = {}

    with _stage("build", times, progress):
        model = build_model(cfg, backend.device, source.seed, checkpoint)
    with atomic_folder(target) as tmp:
        with warnings.catch_warnings(record=True) as caught:
            with _stage("export", times, progress):
                exported = export_model(model, inputs)
            with _stage("compile", times, progress):
                compile_package(exported, tmp / PACKAGE)
            checked = None
            if check:
                with _stage("check", times, progress):
                    checked = _check(tmp / PACKAGE, model, cfg, backend.device, batch, source.seed)
        report = {
            "schema_version": SCHEMA_VERSION,
            **request,
            "stage_s": times,
            "graph": graph_stats(exported),
            "parameters": sum(p.numel() for p in model.parameters()),
            "package": {"file": PACKAGE, "bytes": (tmp / PACKAGE).stat().st_size},
            "check": checked,
            "warnings": sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
        }
        if checked is not None and not checked["passed"]:
            raise OutputError(
                f"--check: the compiled model differs from eager by {checked['max_abs_diff']:.3g} "
                f"(tolerance {TOLERANCE:g} for float32) on a batch of {checked['batch']}; "
                f"no package was written"
            )
        (tmp / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        (tmp / CONFIG).write_text(
            yaml.safe_dump({"model": cfg.model_dump(mode="json")}, sort_keys=False), encoding="utf-8"
        )
    return CompileResult(target, report)


def _check(
    package: Path, model: nn.Module, cfg: Any, device: torch.device, traced: int, seed: int
) -> dict[str, Any]:
    """Compare package and eager model on a padded batch of another size than the traced one."""
    batch = 3 if traced != 3 else 5  # small, odd, and not the traced size: exercises the dynamic batch
    inputs = example_inputs(cfg, batch, device, seed + 1)  # not the traced batch
    diff = check_package(package, model, inputs)
    return {"batch": batch, "max_abs_diff": diff, "tolerance": TOLERANCE, "passed": diff <= TOLERANCE}


@contextlib.contextmanager
def _stops_kept() -> Iterator[None]:
    """Let a Ctrl-C or SIGTERM that comes inside the block stop the run, even where torch catches it.

    torch catches what a Python callback raises while it parses an operator's arguments, KeyboardInterrupt
    included, and raises a TypeError of its own (or logs it and goes on). The block's handlers remember each
    signal before they pass it on; if one came, the block ends as the signal's own handler ends it
    (KeyboardInterrupt for Ctrl-C), whatever torch made of it. Signals whose handler is not a Python
    function (the default, ignored) and blocks outside the main thread are left as they are.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    handlers = {signum: handler for signum, handler in handlers.items() if callable(handler)}
    came: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        came.append(signum)
        handlers[signum](signum, frame)

    for signum in handlers:
        signal.signal(signum, remember)
    try:
        yield
    except Exception:
        if came:  # torch's error stands for the signal: the signal's own exception replaces it
            handlers[came[0]](came[0], None)
        raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if came:  # torch swallowed the signal and went on
        handlers[came[0]](came[0], None)


@contextlib.contextmanager
def _stage(name: str, times: dict[str, float], progress: Callable[[str], None]) -> Iterator[None]:
    progress(name)
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 3)


def _export_failure(exc: BaseException, model: nn.Module) -> str:
    """Say at which line of the model, in which module class, an export failed and what went wrong."""
    if isinstance(exc, GuardOnDataDependentSymNode):
        what = (
            "data-dependent control flow (Python branches on a tensor's value; use torch.where or "
            "torch.cond instead)"
        )
    else:
        what = f"{type(exc).__name__}: {_first_line(exc)}"
    where = ""
    frame = _user_frame(exc)
    if frame is not None:
        owners = _module_classes(model, frame)
        where = f" at {_shown(frame.filename)}:{frame.lineno} in {frame.name}"
        where += f" ({' / '.join(owners)})" if owners else ""
    return f"torch.export cannot trace the model{where}: {what}"


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """Return the innermost frame inside linctl, else the innermost outside torch and the libraries.

    torch attaches the traced code's stack as ``real_stack`` when tracing went through Dynamo; the
    traceback holds it otherwise. Frames of this module are the export call, not the model.
    """
    stacks = [list(getattr(exc, "real_stack", None) or []), traceback.extract_tb(exc.__traceback__)]
    here = str(Path(__file__).resolve())
    for wanted in (_in_linctl, _is_user):
        for stack in stacks:
            hits = [f for f in stack if wanted(f.filename) and str(Path(f.filename).resolve()) != here]
            if hits:
                return hits[-1]
    return None


def _in_linctl(filename: str) -> bool:
    return _is_file(filename) and Path(filename).resolve().is_relative_to(_PACKAGE_DIR)


def _is_user(filename: str) -> bool:
    path = Path(filename).resolve()
    return _is_file(filename) and not any(path.is_relative_to(folder) for folder in _LIBRARY_DIRS)


def _is_file(filename: str) -> bool:
    """Tell source files from <string>, <frozen ...>: code torch generates or the interpreter's own."""
    return not filename.startswith("<")


def _shown(filename: str) -> str:
    path = Path(filename).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def _module_classes(model: nn.Module, frame: traceback.FrameSummary) -> list[str]:
    """Return the classes of ``model``'s modules whose method (own or inherited) holds ``frame``'s line."""
    found = []
    for cls in dict.fromkeys(type(module) for module in model.modules()):
        for klass in cls.__mro__:
            code = getattr(klass.__dict__.get(frame.name), "__code__", None)
            if code is not None and _holds(code, frame):
                found.append(cls.__name__)
                break
    return found


def _holds(code: CodeType, frame: traceback.FrameSummary) -> bool:
    same_file = Path(code.co_filename).resolve() == Path(frame.filename).resolve()
    return same_file and any(line == frame.lineno for *_, line in code.co_lines())


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
