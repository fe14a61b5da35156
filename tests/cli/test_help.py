"""Every command's `--help`: each help text shown whole, defaults included; fixed value sets spelled out
from where the library defines them; old option names still accepted, and not shown."""

import re
from pathlib import Path
from typing import get_args

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from linctl.cli.app import app
from linctl.cli.choices import VALUE_SETS


def commands(group, path: tuple[str, ...] = ()) -> dict:
    """Return the commands under ``group`` by their paths: ("train",), ("prepare", "mlm"), …"""
    found = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found.update(commands(command, (*path, name)))
        else:
            found[(*path, name)] = command
    return found


COMMANDS = commands(get_command(app))
# Options whose absence means "not done" (nothing read, added or written): they have no default to show.
NOTHING_WHEN_ABSENT = {"--config", "--set", "--predict", "--json", "--csv", "--plot", "--init-checkpoint"}


def rendered(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return result.stdout


def flat(text: str) -> str:
    return " ".join(re.sub("[│╭╮╰╯─]", " ", text).split())


def written(param) -> str:
    """Return an option's help as its command's module wrote it (the command escaped it for rich)."""
    return param.help.replace("\\[", "[")


def options(path: tuple[str, ...]) -> list:
    return [
        p
        for p in COMMANDS[path].params
        if p.param_type_name == "option" and p.opts[0] != "--help" and not getattr(p, "hidden", False)
    ]  # positional arguments (download's NAME…) are not options


def test_every_command_is_covered():
    assert {("train",), ("validate",), ("eval",), ("bench",), ("compile",)} < set(COMMANDS)
    assert {("prepare", name) for name in ("wikicorpus", "vocab", "mlm", "glue", "wikitext")} < set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_help_shows_every_help_text_whole_with_its_default(path):
    shown = flat(rendered(path))
    assert not re.search(r"\s\.(\s|$)", shown), "a help text lost what stood before its full stop"
    for param in options(path):
        assert param.help, f"{param.opts[0]} has no help"
        assert flat(written(param)) in shown, f"{param.opts[0]}: help not shown as written"
        if param.is_flag or param.required or param.opts[0] in NOTHING_WHEN_ABSENT:
            continue
        says = "[default: " in param.help or "Required." in param.help
        assert says or param.default not in (None, ""), f"{param.opts[0]}: no default, nor what absence means"
        assert "(default" not in param.help, f"{param.opts[0]}: write defaults as [default: …]"


def library_value_sets() -> dict[tuple[tuple[str, ...], str], list[str]]:
    """The options with a fixed set of values, and the values, read here from the library directly."""
    from linctl.attention import ATTENTION
    from linctl.attention.linformer import Sharing
    from linctl.bench.options import PRESETS, Level, Mode
    from linctl.data.options import LmTokenizer
    from linctl.data.sources.glue import FORMATS, TASKS
    from linctl.runtime.device import BackendName, DeviceName, Precision

    devices, backends = list(get_args(DeviceName)), list(get_args(BackendName))
    return {
        (("train",), "--device"): devices,
        (("eval",), "--device"): devices,
        (("bench",), "--device"): devices,
        (("validate",), "--device"): backends,
        (("compile",), "--device"): backends,
        (("bench",), "--precision"): list(get_args(Precision)),
        (("bench",), "--level"): list(get_args(Level)),
        (("bench",), "--mode"): list(get_args(Mode)),
        (("bench",), "--preset"): list(PRESETS),
        (("bench",), "--sharing"): list(get_args(Sharing)),
        (("bench",), "--attention"): ATTENTION.kinds(),  # the registry's kinds, whichever they are
        (("prepare", "glue"), "--task"): list(TASKS),
        (("prepare", "glue"), "--format"): ["auto", *FORMATS],
        (("prepare", "wikitext"), "--tokenizer"): list(get_args(LmTokenizer)),
    }


def test_options_with_a_value_set_are_those_expected():
    named = {(path, p.opts[0]) for path in COMMANDS for p in options(path) if p.metavar in VALUE_SETS}
    assert named == set(library_value_sets())


@pytest.mark.parametrize(("path", "flag", "values"), [(*key, v) for key, v in library_value_sets().items()])
def test_help_lists_the_values_of_a_fixed_set(path, flag, values):
    (row,) = [line for line in rendered(path).splitlines() if line.split()[1:2] == [flag]]
    assert f"<{'|'.join(values)}>" in row


def shows(text: str, flag: str) -> bool:
    return re.search(rf"{re.escape(flag)}(?![\w-])", text) is not None


def parsed(path: tuple[str, ...], args: list[str]) -> dict:
    return COMMANDS[path].make_context(" ".join(path), args).params


@pytest.mark.parametrize(
    ("path", "required", "old", "new", "name"),
    [
        (("validate",), ["--config", "c.yaml"], ["--backend", "cs"], ["--device", "cs"], "backend"),
        (("compile",), ["--config", "c.yaml"], ["--backend=cpu"], ["--device=cpu"], "backend"),
        (("compile",), ["--config", "c.yaml"], ["--output", "pkg"], ["--output-dir", "pkg"], "output"),
        (("train",), ["--config", "c.yaml"], ["--backend", "cpu"], ["--device", "cpu"], "device"),
        (("bench",), [], ["--dtype", "bf16"], ["--precision", "bf16"], "precision"),
        (("prepare", "vocab"), ["--metadata-files", "m", "--output-dir", "v"], ["--lowercase"],
         ["--do-lower-case"], "do_lower_case"),
        (("prepare", "vocab"), ["--metadata-files", "m", "--output-dir", "v", "--do-lower-case"],
         ["--no-lowercase"], ["--no-do-lower-case"], "do_lower_case"),
    ],
)  # fmt: skip
def test_an_old_option_name_sets_what_the_new_one_does(path, required, old, new, name):
    assert parsed(path, [*required, *old])[name] == parsed(path, [*required, *new])[name]
    assert not shows(rendered(path), old[0].split("=")[0])


def test_eval_output_still_names_the_file_it_writes():
    assert parsed(("eval",), ["--output", "m.json"])["output"] == Path("m.json")
    assert not shows(rendered(("eval",)), "--output")
