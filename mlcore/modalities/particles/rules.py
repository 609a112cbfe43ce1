"""The particle-set record rules (torch-free): the only copy, used by validation, the featurizer and
prediction alike.

A record is a dict of equal-length per-particle lists: the catalog's element fields `pt`, `eta`,
`phi`, `energy` (required) and any further numeric fields (`charge`, `pid`, ...). Every value is a
finite number, pT and energy are positive, and a jet has 1 to `max_len` particles
(`mlcore.modalities.elements` has the shared order of checks and their codes). The canonical form
is the dict of float lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore import catalog
from mlcore.modalities.common import Checked, RecordError, RuleOptions, Warn
from mlcore.modalities.elements import elements_check

REQUIRED = catalog.MODALITIES["particles"].element_fields  # pt, eta, phi, energy
POSITIVE = ("pt", "energy")
MIN_ELEMENTS = 1


def _positive(name: str, arr: np.ndarray, values: list[Any]) -> None:
    if name in POSITIVE and (arr <= 0).any():
        k = int(np.flatnonzero(arr <= 0)[0])
        raise RecordError(f"non-positive {name} at particle {k + 1}", "non_positive", field=name, index=k,
                          value=values[k])


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None,
          needed: Sequence[str] = ()) -> Checked:
    """One particle record -> {field: float64 array} (`parsed`) and its canonical lists (`value`).
    `needed`: further fields the record must have (those a fitted featurizer uses)."""
    first = [*REQUIRED, *(f for f in needed if f not in REQUIRED)]
    fields = [*first, *(f for f in record if f not in first)] if isinstance(record, dict) else first
    arrays, n = elements_check(record, fields=fields, noun="particle", plural="particles", what="particle",
                               min_elements=options.min_elements or MIN_ELEMENTS, max_len=options.max_len,
                               field_check=_positive)
    return Checked({f: a.tolist() for f, a in arrays.items()}, n, arrays)
