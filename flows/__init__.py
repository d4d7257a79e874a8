"""The journeys, one module each. Every module here with a FLOW is a journey the engine can run:
adding a journey is adding a module."""

from __future__ import annotations

import importlib
import pkgutil

from helpline.flowkit import FlowSpec


def _discover() -> tuple[FlowSpec, ...]:
    found: list[FlowSpec] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "FLOW", None)
        if isinstance(spec, FlowSpec):
            found.append(spec)
    return tuple(found)


ALL: tuple[FlowSpec, ...] = _discover()
