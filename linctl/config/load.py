"""Load YAML configs into pydantic schemas, apply ``--set a.b=c`` overrides, report every problem at once."""

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from linctl.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:  # nothing, or only comments: every required key would be reported missing
        raise ConfigError(
            f"{path}: the config file is empty; write the config's keys in it "
            "(configs/<family>/tiny.yaml are examples)"
        )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=c`` into (["a", "b"], c), reading c as a YAML scalar so that types come out right."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. --set train.steps=10")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=c`` override set, creating nested mappings as needed."""
    out = _deep_copy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for depth, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                dotted = ".".join(keys[: depth + 1])
                raise ConfigError(f"--set {text!r}: {dotted} is a value ({child!r}), not a section")
            node = child
        node[keys[-1]] = value
    return out


def validate(schema: type[M], data: Mapping[str, Any], source: str, names: Mapping[str, str] = {}) -> M:
    """Build ``schema`` from ``data``; on failure raise one ConfigError listing every problem.

    Args:
        source: where the data came from, prefixed to each problem (a file path, or "options").
        names: how to show a top-level key to the user, e.g. {"max_seq_length": "--max-seq-length"}.
    """
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        problems = [line for err in exc.errors() for line in _describe(err, schema, names, data).splitlines()]
        prefix = f"{source}: " if source else ""
        raise ConfigError("\n".join(prefix + p for p in problems)) from None


def load_config(path: Path, schema: type[M], overrides: Iterable[str] = ()) -> M:
    """Read ``path``, apply ``overrides`` and validate against ``schema``."""
    return validate(schema, apply_overrides(read_yaml(path), overrides), str(path))


def _describe(
    err: Mapping[str, Any], schema: type[BaseModel], names: Mapping[str, str], data: Mapping[str, Any]
) -> str:
    loc = _without_tags(err["loc"], data)
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names them
        return msg
    if loc and loc[0] in names:
        loc[0] = names[loc[0]]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown key; allowed here: {', '.join(_allowed_keys(schema, err['loc'][:-1]))}"
    if err["type"] == "missing":
        return f"{key}: required, but not given"
    if isinstance(err["input"], Mapping):  # a check across a section's fields: one line per problem
        return "\n".join(f"{key}: {line}" for line in msg.splitlines())
    return f"{key} = {err['input']!r}: {msg}"


def _without_tags(loc: tuple[Any, ...], data: Any) -> list[str]:
    """Drop the ``kind`` tags pydantic adds to the location inside a discriminated union (model.encoder.x)."""
    shown, node = [], data
    for part in loc:
        if isinstance(node, Mapping) and part not in node and node.get("kind") == part:
            continue
        shown.append(str(part))
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
    return shown


def _allowed_keys(schema: type[BaseModel], parent: tuple[Any, ...]) -> list[str]:
    model: Any = schema
    kinds: dict[str, type[BaseModel]] = {}  # the members of a discriminated union, by kind
    for part in parent:
        if part in kinds:  # the tag pydantic puts after a discriminated union's field
            model, kinds = kinds[part], {}
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        kinds = {m.model_fields["kind"].default: m for m in _members(annotation) if "kind" in m.model_fields}
        if not kinds:
            return ["(see the schema)"]
    return ["(see the schema)"] if kinds else sorted(model.model_fields)


def _members(annotation: Any) -> list[type[BaseModel]]:
    found = []
    for arg in get_args(annotation):
        found += [arg] if isinstance(arg, type) and issubclass(arg, BaseModel) else _members(arg)
    return found


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
