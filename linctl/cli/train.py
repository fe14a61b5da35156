"""`linctl train`: train a model from a YAML run config, resuming where its model folder left off."""

from pathlib import Path
from typing import Annotated

import typer

from linctl.atomic import check_writable_folder
from linctl.cli.options import (
    DeviceOpt,
    ModelDirOpt,
    OverridesOpt,
    RunConfigOpt,
    print_summary,
    run_overrides,
)
from linctl.config.load import load_config
from linctl.progress import note


def train(
    config: RunConfigOpt,
    set_: OverridesOpt = None,
    model_dir: ModelDirOpt = None,
    device: DeviceOpt = None,
    compile_: Annotated[
        bool,
        typer.Option("--compile", help="torch.compile the training step, once `linctl validate` passes."),
    ] = False,
    init_checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Pretrained weights for a fresh run: a linctl checkpoint or a Hugging Face BERT folder."
        ),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(
            help="Train with this many processes on this machine: a torchrun job (multi-node: torchrun "
            "itself, see the README) [default: one process, no torchrun]."
        ),
    ] = None,
) -> None:
    """Train a model from a YAML config; resume when the model folder has checkpoints."""
    from linctl.train.config import RunConfig
    from linctl.train.distributed import launch
    from linctl.train.loop import train as run_training
    from linctl.validate.preflight import require_trainable

    overrides = run_overrides(set_, model_dir, device) + (["train.compile=true"] if compile_ else [])
    overrides += [f"train.init_checkpoint={init_checkpoint}"] if init_checkpoint is not None else []
    cfg = load_config(config, RunConfig, overrides)
    check_writable_folder(cfg.model_dir, "--model-dir" if model_dir is not None else f"{config}: model_dir")
    if nproc is not None:
        launch(nproc, cfg.train.accumulate, ["--config", str(config), *(f"--set={o}" for o in overrides)])
        return
    result = run_training(cfg, preflight=require_trainable)
    if not result.main:
        return  # rank 0 of the torchrun job reports
    if result.resumed_from:
        note(f"resumed from step {result.resumed_from:,}")
    if result.warm_start is not None:
        started = result.warm_start
        fresh = f"; initialised afresh: {', '.join(started.fresh)}" if started.fresh else ""
        left = f"; left out: {', '.join(started.ignored)}" if started.ignored else ""
        note(f"started from {started.source}: {started.loaded} tensors{fresh}{left}")
    rows: dict[str, object] = {"steps": result.steps, "model folder": str(result.model_dir)}
    rows["checkpoint"] = str(result.checkpoint)
    rows.update({f"train {key}": value for key, value in result.train.items()})
    rows.update({f"eval {key}": value for key, value in result.eval.items()})
    rows["tokens/s (last window)"] = round(result.tokens_per_s)
    rows["padding"] = f"{result.padding:.1%}"
    print_summary(f"train → {result.model_dir}", rows)
