"""Modalities: one package per input kind, named by the catalog's modality key.

`mlcore/modalities/<key>/` holds `rules.py` (torch-free: the record rules, the only copy, used by
validation, the featurizer and prediction), `view.py` (torch-free: how the dashboards draw a record)
and `featurizer.py` (torch: tokenizer / featurizer, stem module, collate). Adding a modality is one
catalog entry plus one package; nothing here lists them.

This package and every package `__init__` are torch-free: `rules_get` and `view_get` import only
those modules, and the featurizer classes are imported on demand by `featurizer_build` /
`featurizer_from_state` (and by the lazily resolved names `Featurizer`, `FEATURIZERS`).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlcore import catalog
from mlcore.modalities.common import Checked, Example, ModalityView, RecordError, RuleOptions
from mlcore.modalities.views import view_get

if TYPE_CHECKING:
    from mlcore.modalities.base import FEATURIZERS, Featurizer

__all__ = ["FEATURIZERS", "Checked", "Example", "Featurizer", "ModalityView", "RecordError", "RuleOptions",
           "featurizer_build", "featurizer_class", "featurizer_from_state", "rules_get", "view_get"]


def _module(modality: str, part: str) -> ModuleType:
    if modality not in catalog.MODALITIES:
        raise KeyError(f"no featurizer for modality {modality!r}; known: {', '.join(sorted(catalog.MODALITIES))}")
    return import_module(f"mlcore.modalities.{modality}.{part}")


def rules_get(modality: str) -> ModuleType:
    """The modality's torch-free rules module (`check(record, options, warn=None) -> Checked`)."""
    return _module(modality, "rules")




def featurizer_class(modality: str) -> type[Featurizer]:
    """The featurizer class of `modality` (imports its featurizer module, and torch, on first use)."""
    from mlcore.modalities.base import FEATURIZERS

    if modality not in FEATURIZERS:
        _module(modality, "featurizer")  # registers its class
    return FEATURIZERS[modality]


def featurizer_build(modality: str, **options: Any) -> Featurizer:
    """A new, unfitted featurizer for `modality` with the given options."""
    return featurizer_class(modality)(**options)


def featurizer_from_state(modality: str, state: dict[str, Any]) -> Featurizer:
    """Rebuild a fitted featurizer from its saved `state()`."""
    return featurizer_class(modality).from_state(state)


def __getattr__(name: str) -> Any:
    # The torch-side names, resolved on first use so that importing this package loads no torch.
    if name in ("Featurizer", "FEATURIZERS"):
        from mlcore.modalities import base

        if name == "FEATURIZERS":
            for key in catalog.MODALITIES:  # every featurizer registered, as before the packages
                featurizer_class(key)
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
