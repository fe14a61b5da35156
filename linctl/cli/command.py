"""The class of every linctl command: help shown as written, value sets spelled out, old names accepted."""

from typing import Any

import typer
from rich.markup import escape
from typer._click.exceptions import NoSuchOption
from typer.core import TyperCommand

from linctl.cli.choices import spelled_out
from linctl.cli.errors import refuse_option

# Names options had before they took the one they share with the other commands, and other spellings
# users reach for. They are accepted, and not shown, so that commands written with them (scripts, notes,
# the Cerebras recipes, the crybot comparison's `bench --model seq2seq`) work. A command that has an
# option of such a name keeps it.
OLD_NAMES = {
    "--backend": "--device",  # validate, compile
    "--dtype": "--precision",  # bench
    "--model": "--preset",  # bench
    "--lowercase": "--do-lower-case",  # prepare vocab
    "--no-lowercase": "--no-do-lower-case",
    "--output": "--output-dir",  # compile
}


class LinctlCommand(TyperCommand):
    """A Typer command whose help texts are plain text and whose options also answer to their old names."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Typer reads help as rich markup, where "[default: …]" is a tag and vanishes: show it as written.
        if self.help:
            self.help = escape(self.help)
        for param in self.params:
            if getattr(param, "help", None):
                param.help = escape(param.help)  # type: ignore[attr-defined]

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        for param in self.params:
            param.metavar = spelled_out(param.metavar) or param.metavar
        super().format_help(ctx, formatter)

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        own = {name for param in self.params for name in (*param.opts, *param.secondary_opts)}
        renamed = {old: new for old, new in OLD_NAMES.items() if new in own and old not in own}
        try:
            return super().parse_args(ctx, [_renamed(arg, renamed) for arg in args])
        except NoSuchOption as exc:
            refuse_option(ctx, exc)


def _renamed(arg: str, renamed: dict[str, str]) -> str:
    """Return ``arg`` under its new name when it is an old option name (``--old`` or ``--old=value``)."""
    name, equals, value = arg.partition("=")
    return renamed[name] + equals + value if name in renamed else arg
