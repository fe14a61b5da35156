"""A model file: a YAML whose ``model:`` section describes a model as run configs do (configs/bench)."""

from collections.abc import Iterable
from pathlib import Path

from linctl.config.load import apply_overrides, read_yaml, validate
from linctl.config.strict import Strict
from linctl.errors import ConfigError
from linctl.models import ModelSpec


class ModelFile(Strict):
    """A config with only a ``model:`` section (configs/bench/*.yaml)."""

    model: ModelSpec


def read_model(path: Path, overrides: Iterable[str] = ()) -> ModelSpec:
    """Return the ``model:`` section of any config (run or model file), validated alone."""
    data = apply_overrides(read_yaml(path), overrides)
    if "model" not in data:
        raise ConfigError(f"{path}: no model section; give a run config or a YAML with a model: section")
    return validate(ModelFile, {"model": data["model"]}, str(path)).model
