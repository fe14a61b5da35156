"""Options shared by several commands, and the merge of defaults, config file, ``--set`` and flags."""

from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from linctl.config.load import apply_overrides, read_yaml, validate

M = TypeVar("M", bound=BaseModel)

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="YAML file with the options; flags given on the command line win."),
]
OverridesOpt = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: --set a.b=c (repeatable).")
]
WorkersOpt = Annotated[int | None, typer.Option(help="Worker processes [default: every core].")]
InputPrefixOpt = Annotated[str, typer.Option(help="Prefix joined to relative input paths [default: none].")]
SeedOpt = Annotated[int, typer.Option(help="Seed of every random choice; same seed, same bytes.")]
SpacyModelOpt = Annotated[
    str,
    typer.Option(help="spaCy pipeline for sentence splitting; without it, blank English + sentencizer."),
]

stdout = Console()  # what a command produced; its notes go to stderr (linctl.progress)


def flag(field: str) -> str:
    """Return the command-line flag of a schema field: max_seq_length -> --max-seq-length."""
    return "--" + field.replace("_", "-")


def build_options(
    ctx: typer.Context, schema: type[M], config: Path | None = None, overrides: list[str] | None = None
) -> M:
    """Validate ``schema`` from defaults < config file < ``--set`` < flags typed on the command line.

    A problem is reported under the name the user gave it: ``--flag`` or ``FILE: key``.
    """
    typed = {
        name: value
        for name, value in ctx.params.items()
        if name in schema.model_fields and value is not None and _typed_by_user(ctx, name)
    }
    defaults = {
        name: value
        for name, value in ctx.params.items()
        if name in schema.model_fields and value is not None and name not in typed
    }
    from_file: dict[str, Any] = apply_overrides(read_yaml(config), overrides or []) if config else {}
    names = {name: flag(name) for name in schema.model_fields}
    names.update({p.name: p.opts[0] for p in ctx.command.params if p.name in names})  # overrides: --set
    names.update({name: f"{config}: {name}" for name in from_file if name not in typed})
    return validate(schema, {**defaults, **from_file, **typed}, "", names)


def _typed_by_user(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def print_summary(title: str, rows: dict[str, Any]) -> None:
    """Print a two-column table of what a command did."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        shown = (
            f"{value:,.4g}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        )
        table.add_row(key, str(shown))
    stdout.print(table)


JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the report as JSON to this file.")]
RunConfigOpt = Annotated[Path, typer.Option("--config", help="YAML run config (model, task, optim, train).")]
ModelDirOpt = Annotated[
    Path | None, typer.Option(help="Folder of checkpoints and metrics [default: the config's model_dir].")
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        metavar="DEVICE",
        help="Where to run: auto is cuda when a GPU is visible, else cpu "
        "[default: the config's train.device, auto].",
    ),
]
# validate and compile target a backend (a device with its compile path): cs, a Cerebras system, is one too.
BackendOpt = Annotated[
    str,
    typer.Option(
        "--device",
        metavar="BACKEND",
        help="The hardware to target: auto is cuda when a GPU is visible, else cpu; cs is a Cerebras system.",
    ),
]


def run_overrides(overrides: list[str] | None, model_dir: Path | None, device: str | None) -> list[str]:
    """Return ``--set`` overrides with ``--model-dir`` and ``--device`` appended as the keys they set."""
    extra = [f"model_dir={model_dir}"] if model_dir is not None else []
    extra += [f"train.device={device}"] if device is not None else []
    return [*(overrides or []), *extra]
