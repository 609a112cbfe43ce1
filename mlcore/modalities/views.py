"""Every modality's view descriptor, torch-free: what the dashboards draw with instead of testing
modality keys. `view_get(key)` imports `mlcore/modalities/<key>/view.py` (the catalog names the
modalities; a new one needs its package only). The web process imports this module (it is on the
portal's allowed list in `.importlinter`); it loads neither torch nor numpy.
"""

from __future__ import annotations

from importlib import import_module

from mlcore import catalog
from mlcore.modalities.common import ModalityView

__all__ = ["ModalityView", "view_get"]


def view_get(modality: str) -> ModalityView:
    """The view descriptor of `modality`; KeyError for a modality the catalog does not know."""
    if modality not in catalog.MODALITIES:
        raise KeyError(f"unknown modality {modality!r}; known: {', '.join(sorted(catalog.MODALITIES))}")
    return import_module(f"mlcore.modalities.{modality}.view").VIEW
