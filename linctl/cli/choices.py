"""The fixed sets of values that options take, each read from where the library defines it.

An option names its set by its metavar (``--device DEVICE``); `--help` spells the set out. The sets are
read only when help is shown, since most live beside torch, which `linctl` does not import to start. The
library checks the values and names the allowed ones when one is wrong.
"""

from collections.abc import Callable, Sequence
from typing import get_args


def _devices() -> Sequence[str]:
    from linctl.runtime.device import DeviceName

    return get_args(DeviceName)


def _backends() -> Sequence[str]:
    from linctl.runtime.device import BackendName

    return get_args(BackendName)


def _precisions() -> Sequence[str]:
    from linctl.runtime.device import Precision

    return get_args(Precision)


def _levels() -> Sequence[str]:
    from linctl.bench.options import Level

    return get_args(Level)


def _modes() -> Sequence[str]:
    from linctl.bench.options import Mode

    return get_args(Mode)


def _presets() -> Sequence[str]:
    from linctl.bench.options import PRESETS

    return list(PRESETS)


def _sharing() -> Sequence[str]:
    from linctl.bench.options import sharing_modes

    return sharing_modes()


def _attention_kinds() -> Sequence[str]:
    from linctl.attention import ATTENTION

    return ATTENTION.kinds()


def _glue_tasks() -> Sequence[str]:
    from linctl.data.sources.glue import TASKS

    return list(TASKS)


def _glue_formats() -> Sequence[str]:
    from linctl.data.sources.glue import FORMATS

    return ["auto", *FORMATS]


def _lm_tokenizers() -> Sequence[str]:
    from linctl.data.options import LmTokenizer

    return get_args(LmTokenizer)


VALUE_SETS: dict[str, Callable[[], Sequence[str]]] = {
    "DEVICE": _devices,
    "BACKEND": _backends,
    "PRECISION": _precisions,
    "LEVEL": _levels,
    "MODE": _modes,
    "PRESET": _presets,
    "SHARING": _sharing,
    "KINDS": _attention_kinds,
    "TASK": _glue_tasks,
    "FORMAT": _glue_formats,
    "TOKENIZER": _lm_tokenizers,
}


def spelled_out(metavar: str | None) -> str | None:
    """Return ``<a|b|c>`` for a metavar that names a value set, else None."""
    values = VALUE_SETS.get(metavar or "")
    return None if values is None else "<" + "|".join(values()) + ">"
