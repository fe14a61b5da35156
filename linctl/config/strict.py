"""The base of every schema: unknown keys are errors and loaded configs are immutable."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every schema: unknown keys are errors and loaded configs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
