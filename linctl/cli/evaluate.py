"""`linctl eval`: metrics of a checkpoint on its task's evaluation data, as a table and JSON."""

import json
from pathlib import Path
from typing import Annotated

import typer

from linctl.cli.options import ConfigOpt, DeviceOpt, ModelDirOpt, OverridesOpt, print_summary, run_overrides
from linctl.config.load import apply_overrides, load_config, validate
from linctl.errors import ConfigError, InputError


def evaluate(
    config: ConfigOpt = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint folder [default: the newest in the model folder].")
    ] = None,
    model_dir: ModelDirOpt = None,
    set_: OverridesOpt = None,
    device: DeviceOpt = None,
    output: Annotated[Path | None, typer.Option(help="JSON file [default: CHECKPOINT/eval.json].")] = None,
) -> None:
    """Evaluate a checkpoint: masked-LM perplexity and accuracy for MLM runs."""
    from linctl.atomic import write_text_atomic
    from linctl.eval.run import evaluate_checkpoint
    from linctl.train import checkpoint as checkpoints
    from linctl.train.config import RunConfig

    overrides = run_overrides(set_, model_dir, device)
    cfg = load_config(config, RunConfig, overrides) if config else None
    found = checkpoint
    if found is None:
        folder = model_dir or (cfg.model_dir if cfg else None)
        if folder is None:
            raise ConfigError("give --checkpoint, --model-dir or a --config whose model_dir has checkpoints")
        found = checkpoints.latest(folder)
        if found is None:
            raise InputError(f"{folder}: no complete checkpoint (checkpoint-NNNNNNNN/) to evaluate")
    if not Path(found).is_dir():
        raise InputError(f"--checkpoint {found}: no such folder")
    if cfg is None:
        saved = apply_overrides(checkpoints.read_config(found), overrides)
        cfg = validate(RunConfig, saved, f"{found}/config.yaml: ")
    result = evaluate_checkpoint(cfg, Path(found))
    target = output or Path(found) / "eval.json"
    write_text_atomic(target, json.dumps(result, indent=1) + "\n")
    print_summary(f"eval {found} → {target}", {k: v for k, v in result.items() if k != "checkpoint"})
