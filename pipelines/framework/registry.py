"""Pipeline discovery: every module in ``pipelines.definitions`` that defines
``PIPELINE`` (a ``PipelineSpec``) is a pipeline. Adding a module is all it
takes; nothing else lists pipelines."""

from __future__ import annotations

import importlib
import pkgutil

from .. import definitions
from .spec import PipelineSpec


def discover() -> dict[str, PipelineSpec]:
    found: dict[str, PipelineSpec] = {}
    for info in sorted(pkgutil.iter_modules(definitions.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{definitions.__name__}.{info.name}")
        spec = getattr(module, "PIPELINE", None)
        if isinstance(spec, PipelineSpec):
            if spec.name in found:
                raise ValueError(f"two pipelines are named {spec.name!r}")
            found[spec.name] = spec
    return found


def get(name: str) -> PipelineSpec:
    pipelines = discover()
    if name not in pipelines:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(pipelines))}")
    return pipelines[name]
