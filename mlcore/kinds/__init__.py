"""Target kinds as plug-ins: one module per kind, each a `Kind` subclass registered under its key.

A kind owns everything that depends on what is predicted: the head and its loss, label encoding
(fit / check / encode / decode, and which kind a declared one resolves to for the data), label
collation, metrics, prediction columns, the distillation loss, the evaluation arrays the dashboards
draw, and the label checks and statistics of dataset validation. Its torch-free metadata (metric
names, primary metric, evaluation plots, embedding colouring, default target column ...) is the
`mlcore.catalog.TargetKind` of the same key.

Adding a kind: one `TargetKind(...)` in `mlcore.catalog` and one module here defining a subclass
decorated with `@kind_register`; every module of this package is imported when the registry is first
read, so nothing else changes. The modules import torch only inside the methods that need it, so
validation and prediction-file writing stay torch-free.
"""

from __future__ import annotations

import importlib
import pkgutil

from mlcore.kinds.base import Kind

KINDS: dict[str, Kind] = {}
_loaded = False


def kind_register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: register one instance of `cls` under `cls.key` (a catalog target kind)."""
    from mlcore import catalog

    catalog.target_kind_get(cls.key)  # KeyError for a kind the catalog does not describe
    KINDS[cls.key] = cls()
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def kind_get(key: str) -> Kind:
    """The run-time kind `key`; KeyError listing the valid keys otherwise."""
    _load()
    try:
        return KINDS[key]
    except KeyError:
        raise KeyError(f"unknown target kind {key!r}; valid kinds: {', '.join(sorted(KINDS))}") from None


def kinds_all() -> dict[str, Kind]:
    """Every registered kind by key."""
    _load()
    return dict(KINDS)


__all__ = ["KINDS", "Kind", "kind_get", "kind_register", "kinds_all"]
