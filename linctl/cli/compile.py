"""`linctl compile`: export a config's model and AOT-compile it into a self-contained package folder."""

from pathlib import Path
from typing import Annotated

import typer

from linctl.cli.options import BackendOpt, OverridesOpt, print_summary
from linctl.progress import note


def compile_model(
    config: Annotated[
        Path, typer.Option("--config", help="A run config, or any YAML with a model: section.")
    ],
    backend: BackendOpt = "auto",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            help="Package folder [default: MODEL_DIR/compiled for run configs, else compiled/CONFIG_STEM].",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the package folder if it exists.")] = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="Run the package and the eager model on a random batch and compare."),
    ] = False,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Batch of the example inputs [default: the config's train.batch_size, else 8]."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint folder to take the weights from [default: initialised from the seed]."),
    ] = None,
    set_: OverridesOpt = None,
) -> None:
    """Compile a config's model ahead of time into a self-contained package, without training."""
    from linctl.export.compile import PACKAGE, compile_config
    from linctl.runtime.device import resolve_backend

    target = resolve_backend(backend)

    result = compile_config(
        config,
        set_ or [],
        target,
        output=output,
        force=force,
        check=check,
        batch_size=batch_size,
        checkpoint=checkpoint,
        progress=lambda stage: note(f"{stage}…", style="dim"),
    )
    report = result.report
    inputs = report["inputs"]["input_ids"]["shape"]
    dynamic = report["dynamic_dims"]["batch"]
    rows: dict[str, object] = {
        "backend": f"{report['backend']} ({report['compile_path']})",
        "weights": report["weights"],
        "example inputs (B × T)": f"{inputs[0]} × {inputs[1]}; B from {dynamic['min']} to {dynamic['max']}",
    }
    rows.update({f"{stage} s": seconds for stage, seconds in report["stage_s"].items()})
    graph = report["graph"]
    rows["graph nodes"] = graph["nodes"]
    rows["call_function nodes"] = graph["call_function"]
    rows["distinct aten ops"] = len(graph["aten_ops"])
    rows["parameters"] = report["parameters"]
    rows["package"] = str(result.output / PACKAGE)
    rows["package bytes"] = report["package"]["bytes"]
    checked = report["check"]
    if checked is not None:
        rows[f"check: max |compiled - eager| (B={checked['batch']})"] = checked["max_abs_diff"]
    if report["warnings"]:
        rows["torch warnings (in compile-report.json)"] = len(report["warnings"])
    done = " (already complete: the folder holds this package)" if result.already_complete else ""
    print_summary(f"compile → {result.output}{done}", rows)
