"""Registries: name -> class, built from each class's nested ``Config`` and its ``kind``."""

from collections.abc import Iterable
from typing import Annotated, Any, Generic, TypeVar, Union

from pydantic import BaseModel, Field

T = TypeVar("T")


class Registry(Generic[T]):
    """An explicit list of classes, each with a nested pydantic ``Config`` whose ``kind`` names it."""

    def __init__(self, what: str, classes: Iterable[type[T]]) -> None:
        self.what = what
        self.classes: dict[str, type[T]] = {}
        for cls in classes:
            kind = cls.Config.model_fields["kind"].default  # type: ignore[attr-defined]
            if kind in self.classes:
                raise ValueError(f"two {what} classes share the kind {kind!r}")
            self.classes[kind] = cls

    def kinds(self) -> list[str]:
        """Return the registered kinds, in registration order."""
        return list(self.classes)

    def config_union(self) -> Any:
        """Return the union of the Config classes, discriminated on ``kind`` (a pydantic field type)."""
        configs = tuple(cls.Config for cls in self.classes.values())  # type: ignore[attr-defined]
        if len(configs) == 1:
            return configs[0]
        return Annotated[Union[configs], Field(discriminator="kind")]  # noqa: UP007

    def cls(self, cfg: BaseModel) -> type[T]:
        """Return the class that ``cfg`` configures."""
        return self.classes[cfg.kind]  # type: ignore[attr-defined]

    def build(self, cfg: BaseModel, *args: Any, **kwargs: Any) -> T:
        """Instantiate the class of ``cfg.kind`` with ``cfg`` and the given arguments."""
        return self.cls(cfg)(cfg, *args, **kwargs)
