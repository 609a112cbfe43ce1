"""Modalities: one module per input kind (tokenizer / featurizer, stem module, collate).

Importing this package registers every featurizer in `FEATURIZERS` (modality key -> class); each
module registers its class right under its definition, so adding a modality is one new module plus
one import line here.
"""

from __future__ import annotations

from typing import Any

from mlcore.modalities import dna, lightcurve, particles, protein, smiles, tabular  # noqa: F401  (registration)
from mlcore.modalities.base import FEATURIZERS, Example, Featurizer, RecordError

__all__ = ["FEATURIZERS", "Example", "Featurizer", "RecordError", "featurizer_build", "featurizer_from_state"]


def featurizer_build(modality: str, **options: Any) -> Featurizer:
    """A new, unfitted featurizer for `modality` with the given options."""
    try:
        cls = FEATURIZERS[modality]
    except KeyError:
        raise KeyError(f"no featurizer for modality {modality!r}; known: {', '.join(sorted(FEATURIZERS))}") from None
    return cls(**options)


def featurizer_from_state(modality: str, state: dict[str, Any]) -> Featurizer:
    """Rebuild a fitted featurizer from its saved `state()`."""
    return FEATURIZERS[modality].from_state(state)
