"""`linctl validate`: pre-flight checks of a config for a backend, in seconds, without training."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from linctl.cli.options import BackendOpt, JsonOpt, OverridesOpt, print_summary
from linctl.errors import ConfigError


def validate(
    config: Annotated[Path, typer.Option("--config", help="A run, model (configs/bench) or prepare config.")],
    backend: BackendOpt = "auto",
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Check everything but the data (not prepared yet).")
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Micro-batch to check [default: the config's train.batch_size].")
    ] = None,
    set_: OverridesOpt = None,
    json_file: JsonOpt = None,
) -> None:
    """Check a config before training: every problem at once, FLOPs, memory and the largest batch."""
    from linctl.atomic import check_writable_file, write_text_atomic
    from linctl.runtime.device import resolve_backend
    from linctl.validate.preflight import describe, validate_config

    if json_file is not None:
        check_writable_file(json_file, "--json")
    target = resolve_backend(backend)
    found = validate_config(config, set_ or [], target, data=not no_data, batch_size=batch_size)
    report = describe(found)
    if json_file is not None:
        write_text_atomic(json_file, json.dumps(report, indent=2) + "\n")
    print_summary(f"validate {config} · backend {target.name}", _rows(report, no_data))
    if found.problems:
        count = len(found.problems)
        listed = "\n".join(f"  - {problem}" for problem in found.problems)
        raise ConfigError(f"{config}: {count} problem{'s' * (count > 1)}, it would not train:\n{listed}")


def _rows(report: dict[str, Any], no_data: bool) -> dict[str, object]:
    rows: dict[str, object] = {}
    step = report.get("step")
    if step is not None:
        sizes = step["bytes"]
        rows["parameters"] = report["parameters"]
        rows.update({f"  in {name}": count for name, count in report["parameters_by_module"].items()})
        rows["batch (tokens)"] = f"{step['batch_size']:,} ({step['tokens']:,})"
        rows["FLOPs per token, forward"] = _si(step["flops_forward_per_token"])
        rows["FLOPs per token, training"] = _si(step["flops_train_per_token"])
        for name in ("weights", "optimizer", "gradients", "activations", "batch"):
            rows[f"memory: {name}"] = _mib(sizes[name])
        rows["memory per step (estimated peak)"] = _mib(sizes["peak"])
    if report["memory_available"] is not None:
        rows["memory available"] = _mib(report["memory_available"])
    if report["max_batch"] is not None:
        rows["largest batch estimated to fit"] = report["max_batch"]
    rows["data"] = "not checked (--no-data)" if no_data else "checked"
    rows["checked in"] = f"{report['seconds']:.1f} s"
    rows["result"] = "would train" if report["ok"] else f"{len(report['problems'])} problem(s)"
    return rows


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _si(value: float) -> str:
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:,.2f} {unit}"
    return f"{value:,.0f}"
