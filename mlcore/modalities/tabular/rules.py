"""The tabular record rules (torch-free): the only copy, used by validation, the featurizer and
prediction alike.

A record is a dict column -> value. A value is missing when it is empty, None, NaN, one of the
catalog's `MISSING_STRINGS` ("NA", "?", ...) or a declared numeric sentinel (default -999); missing
values are allowed everywhere (the featurizer embeds them as a learned "missing" vector). In a
numeric column every present value is a finite number (`not_numeric`, `not_finite`); in a
categorical column it is its stripped text. `cell` is the rule for one value (validation applies it
column by column, so every bad cell of a row is listed); `check` applies it to a whole record.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from mlcore.catalog import number_or_missing
from mlcore.modalities.common import Checked, RecordError, RuleOptions, Warn, text_of


def is_missing(value: Any, sentinels: Collection[float]) -> bool:
    """Whether `value` denotes a missing value (empty, NaN, a missing string or a sentinel number)."""
    number = number_or_missing(value)
    return number is not None and (math.isnan(number) or number in sentinels)


def cell(value: Any, column: str, *, numeric: bool, sentinels: Collection[float]) -> float | str | None:
    """One value of `column`: None when missing, a float in a numeric column, else the stripped text;
    RecordError when a numeric column holds something else."""
    number = number_or_missing(value)
    if number is not None and (math.isnan(number) or number in sentinels):
        return None
    if not numeric:
        return text_of(value)
    if number is None:
        raise RecordError(f"non-numeric value {text_of(value)!r} in numeric column {column!r}", "not_numeric",
                          field=column, value=value)
    if math.isinf(number):
        raise RecordError(f"non-finite value {text_of(value)!r} in numeric column {column!r}", "not_finite",
                          field=column, value=value)
    return number


def check(record: Any, options: RuleOptions = RuleOptions(), warn: Warn | None = None,
          columns: Sequence[str] | None = None) -> Checked:
    """One row -> {column: parsed cell} over `columns` (default: the record's own), numeric columns
    being `options.numeric`; RecordError on the first absent column or bad cell."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a dict of column values, got {type(record).__name__}", "invalid_type")
    columns = list(record) if columns is None else list(columns)
    absent = [c for c in columns if c not in record]
    if absent:
        raise RecordError(f"missing feature column(s) {', '.join(absent)}", "missing_field", field=absent[0])
    numeric = options.numeric
    value = {c: cell(record[c], c, numeric=c in numeric, sentinels=options.sentinels) for c in columns}
    return Checked(value, len(columns))
