"""The record rules particle sets and light curves share (torch-free): a record is a dict of
equal-length per-element lists (one value per particle or observation), read from a long-format file
(one row per element) or from Parquet list columns, or sent as JSON.

`elements_check` applies them field by field, in the order the fields are given, and stops at the
first problem (one problem per record, naming the element): a length different from the first
field's (`length_mismatch`), a missing value (`missing_value`: empty, NaN, "NA", ...), a value that
is no number (`not_numeric`), an infinite one (`not_finite`), then the count of elements
(`too_few_elements`, `too_many_elements`); a modality adds its own per-field rules through
`field_check`. Text fields (a light curve's band) are kept as stripped
strings, the others become float64 arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlcore.catalog import MISSING_STRINGS, number_or_missing
from mlcore.modalities.common import RecordError, text_of


def _values(values: Any) -> list[Any]:
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        return [values]  # one element written without a list
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def elements_check(record: Any, *, fields: Sequence[str], text_fields: Sequence[str] = (), noun: str,
                   plural: str, what: str, min_elements: int, max_len: int,
                   field_check: Callable[[str, np.ndarray, list[Any]], None] | None = None,
                   ) -> tuple[dict[str, Any], int]:
    """`record` -> ({field: float64 array, or list of str for a text field}, number of elements).
    `field_check(name, array, values)` adds a modality's own rule on a numeric field, right after it
    is read (before the next field's)."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a dict of per-{noun} arrays, got {type(record).__name__}", "invalid_type")
    missing = [f for f in fields if f not in record]
    if missing:
        raise RecordError(f"missing {what} field(s) {', '.join(missing)}", "missing_field", field=missing[0])
    out: dict[str, Any] = {}
    count: int | None = None
    first = fields[0] if fields else ""
    for name in fields:
        values = _values(record[name])
        if count is None:
            count = len(values)
        elif len(values) != count:
            raise RecordError(f"{len(values)} values, but {first} has {count}", "length_mismatch", field=name)
        if name in text_fields:
            texts = [text_of(v) for v in values]
            empty = next((k for k, v in enumerate(texts) if not v), None)
            if empty is not None:
                raise RecordError(f"missing {name} at {noun} {empty + 1}", "missing_value", field=name, index=empty,
                                  value="")
            out[name] = texts
            continue
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            # Slow path, only for a bad record: parse value by value to name the offending element.
            parsed = [number_or_missing(v) for v in values]
            bad = next((k for k, v in enumerate(parsed) if v is None), None)
            if bad is not None:
                raise RecordError(f"{name} {text_of(values[bad])!r} is not a number", "not_numeric", field=name,
                                  index=bad, value=values[bad]) from None
            arr = np.asarray(parsed, dtype=np.float64)
        nonfinite = np.flatnonzero(~np.isfinite(arr))
        if len(nonfinite):
            k = int(nonfinite[0])
            value = values[k]
            if value is None or text_of(value).lower() in MISSING_STRINGS:
                # NaN is how a missing number reaches here from arrays and Parquet.
                nan = isinstance(value, float) and math.isnan(value)
                message = f"non-finite {name} at {noun} {k + 1} (NaN, a missing value)" if nan else \
                    f"missing {name} at {noun} {k + 1}"
                raise RecordError(message, "missing_value", field=name, index=k, value=value)
            raise RecordError(f"non-finite {name} at {noun} {k + 1}", "not_finite", field=name, index=k, value=value)
        if field_check is not None:
            field_check(name, arr, values)
        out[name] = arr
    count = count or 0
    if count < min_elements:
        raise RecordError(f"{count} {plural}, at least {min_elements} needed", "too_few_elements")
    if count > max_len:
        raise RecordError(f"{count} {plural} is more than max_len {max_len}", "too_many_elements")
    return out, count
