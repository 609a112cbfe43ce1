"""The light-curve record rules (torch-free): the only copy, used by validation, the featurizer and
prediction alike.

A record is a dict of equal-length per-observation lists: the catalog's element fields `time`,
`flux`, `flux_err` (finite numbers, `flux_err` not negative) and `band` (a filter name, not empty),
with at least 2 and at most `max_len` observations (`mlcore.modalities.elements` has the shared
order of checks and their codes). Observations out of time order are sorted (noted through `warn`,
`time_order="sort"`, training's rule) or rejected (`time_order="reject"`). The canonical form is the
dict of time-sorted lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlcore import catalog
from mlcore.modalities.common import Checked, RecordError, RuleOptions, Warn
from mlcore.modalities.elements import elements_check

REQUIRED = catalog.MODALITIES["lightcurve"].element_fields  # time, flux, flux_err, band
TEXT_FIELDS = ("band",)
MIN_ELEMENTS = 2


def _error_not_negative(name: str, arr: np.ndarray, values: list[Any]) -> None:
    if name == "flux_err" and (arr < 0).any():
        k = int(np.flatnonzero(arr < 0)[0])
        raise RecordError(f"negative flux_err at observation {k + 1}", "negative_error", field=name, index=k,
                          value=values[k])


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None) -> Checked:
    """One light curve -> time-sorted {time, flux, flux_err: float64 array; band: list of str} (`parsed`)
    and its canonical lists (`value`)."""
    fields, n = elements_check(record, fields=REQUIRED, text_fields=TEXT_FIELDS, noun="observation",
                               plural="observations", what="light-curve",
                               min_elements=options.min_elements or MIN_ELEMENTS, max_len=options.max_len,
                               field_check=_error_not_negative)
    t = fields["time"]
    steps = np.diff(t)
    if (steps < 0).any():  # long-format files need not be time-ordered
        k = int(np.flatnonzero(steps < 0)[0]) + 1
        if options.time_order == "reject":
            raise RecordError(f"time {t[k]:g} at observation {k + 1} is earlier than {t[k - 1]:g} before it",
                              "time_order", field="time", index=k, value=t[k])
        if warn is not None:
            warn("times_unordered", "observations not in time order; sorted in the canonical copy")
        order = np.argsort(t, kind="stable")
        fields = {c: ([v[j] for j in order] if c in TEXT_FIELDS else v[order]) for c, v in fields.items()}
    value = {c: (v if c in TEXT_FIELDS else v.tolist()) for c, v in fields.items()}
    return Checked(value, n, fields)
