"""Backend registry: the physical backend always, others (diffusion, plugins) when they can run."""

from __future__ import annotations

from collections.abc import Callable

from icportrait_studio.errors import InputError
from icportrait_studio.pipeline.base import Backend

_factories: dict[str, Callable[[], Backend]] = {}
_instances: dict[str, Backend] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register a backend factory; it is called once, on first use (so heavy imports stay lazy)."""
    _factories[name] = factory
    _instances.pop(name, None)


def backend_names() -> list[str]:
    return list(_factories)


def get_backend(name: str) -> Backend:
    if name not in _factories:
        raise InputError(f"unknown backend {name!r}; available: {', '.join(backend_names())}")
    if name not in _instances:
        _instances[name] = _factories[name]()
    return _instances[name]


def _physical() -> Backend:
    from icportrait_studio.pipeline.physical import PhysicalBackend

    return PhysicalBackend()


register_backend("physical", _physical)


def _diffusion() -> Backend:
    from icportrait_studio.model.backend import DiffusionBackend

    return DiffusionBackend()


register_backend("diffusion", _diffusion)
