"""One registry pattern for every model family (timm's ``register_model`` / ``create_model`` / ``list_models``).

A family keeps one ``Registry``; each named variant is a small factory registered under its function name::

    VITS = Registry("ViT")

    @VITS.register
    def vit_tiny() -> ViTConfig:
        return ViTConfig(embed_dim=192, depth=12, num_heads=3)

    VITS.names()             # ['vit_tiny', ...]
    VITS.factory("vit_tiny")  # the factory; an unknown name is an error naming the known ones

>>> toy = Registry("toy")
>>> @toy.register
... def small():
...     return 1
>>> toy.names(), toy.factory("small")()
(['small'], 1)
>>> toy.factory("large")
Traceback (most recent call last):
...
KeyError: "model.name: unknown toy 'large'; expected one of small"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Named variants of one model family."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._factories: dict[str, F] = {}

    def register(self, factory: F) -> F:
        """Register ``factory`` under its function name (a decorator); a name registered twice is an error."""
        name = factory.__name__
        if name in self._factories:
            raise ValueError(f"{self.family} variant {name!r} is registered twice")
        self._factories[name] = factory
        return factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def factory(self, name: str) -> F:
        """The factory of ``name``; KeyError naming the key ``model.name`` and the registered names otherwise."""
        if name not in self._factories:
            raise KeyError(f"model.name: unknown {self.family} {name!r}; expected one of {', '.join(self.names())}")
        return self._factories[name]
