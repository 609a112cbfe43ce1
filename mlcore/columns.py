"""The column mapping: which columns of a data file play which role. One vocabulary, everywhere.

The upload form and the API build a `ColumnMapping`; the dataset schema stores its `to_dict()`
(with the upload's `task` and `options` beside it); validation resolves it against the file and
writes the resolved mapping into its report's `columns`; the training recipe takes it as
`RecipeConfig.columns`; the model directory saves it in `config.json` and prediction reads files
with it. `ColumnMapping.from_dict` reads each of those dictionaries, the older forms included
(`input_col` / `feature_cols` of model directories, `input` / `targets` / `id` of validation reports).

Standard library only: the web process imports this module (no torch, no numpy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

# The keys `to_dict` writes (empty entries are left out: the modality's or task's default applies).
MAPPING_KEYS = ("input_cols", "target_cols", "id_col", "group_col", "split_col")
# Older spellings `from_dict` still reads, per field, after the key above: model directories wrote
# `input_col` (+ `feature_cols` for tables), validation reports `input`, `targets`, `id`, `group`, `split`.
_OLD_KEYS = {
    "input_cols": ("input_col", "feature_cols", "input"),
    "target_cols": ("targets",),
    "id_col": ("id",),
    "group_col": ("group",),
    "split_col": ("split",),
}


class MappingError(ValueError):
    """A malformed or inconsistent mapping; `field` is the entry it concerns (`input_cols`, `target_cols`, ...)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _name(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError(f"{field}: a column name is a string, got {value!r}", field=field)
    return value.strip() or None


def _names(value: Any, field: str) -> tuple[str, ...]:
    """A tuple of distinct column names from a list, a tuple, one name or "a, b" (order kept)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise MappingError(f"{field}: expected a list of column names, got {value!r}", field=field)
    out: list[str] = []
    for item in value:
        name = _name(item, field)
        if name and name not in out:
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of the file play which role. Empty / None means: the modality's or task's default.

    `input_cols`: the record column (sequence, SMILES, SDF molecule) or, for long formats, the object
    id column; for tabular data the feature columns (empty: every column not mapped elsewhere).
    `target_cols`: one or several targets (several for multi-target regression).
    `id_col`, `group_col`, `split_col`: record ids, groups kept in one split, train / val / test per record.

    Built from lists or strings alike (normalized to tuples of distinct, stripped names); a column
    cannot be a target and also the input, id, group or split column (MappingError, a ValueError).
    """

    input_cols: tuple[str, ...] = ()
    target_cols: tuple[str, ...] = ()
    id_col: str | None = None
    group_col: str | None = None
    split_col: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_cols", _names(self.input_cols, "input_cols"))
        object.__setattr__(self, "target_cols", _names(self.target_cols, "target_cols"))
        for key in ("id_col", "group_col", "split_col"):
            object.__setattr__(self, key, _name(getattr(self, key), key))
        problems = self.problems()
        if problems:
            raise MappingError("; ".join(problems.values()), field="target_cols")

    def problems(self) -> dict[str, str]:
        """Role conflicts, per field: a target that is also the input, id, group or split column."""
        out: dict[str, str] = {}
        roles = {"input_cols": "an input column", "id_col": "the id column", "group_col": "the group column",
                 "split_col": "the split column"}
        for key, role in roles.items():
            value = getattr(self, key)
            both = [c for c in ((value,) if isinstance(value, str) else value or ()) if c in self.target_cols]
            if both:
                out[key] = f"{', '.join(repr(c) for c in both)} is a target column; it cannot also be {role}"
        return out

    # -- dictionaries ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: lists for the column lists, only the entries that are set."""
        out: dict[str, Any] = {}
        for key in MAPPING_KEYS:
            value = getattr(self, key)
            if value:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | ColumnMapping | None) -> ColumnMapping:
        """A mapping from `to_dict()`'s form or an older one (see the module doc); other keys are ignored
        (a dataset schema's `task`, a report's `line` or `file`). MappingError on a malformed entry."""
        if data is None:
            return cls()
        if isinstance(data, ColumnMapping):
            return data
        if not isinstance(data, Mapping):
            raise MappingError(f"a column mapping is a dictionary, got {data!r}", field="mapping")
        values: dict[str, Any] = {}
        for key in MAPPING_KEYS:
            if data.get(key) not in (None, "", [], ()):
                values[key] = data[key]
                continue
            for old in _OLD_KEYS[key]:
                if data.get(old) not in (None, "", [], ()):
                    values[key] = data[old]
                    break
        return cls(**values)

    # -- uses -----------------------------------------------------------------------------------

    def with_targets(self, target_cols: Iterable[str] | None) -> ColumnMapping:
        """The same mapping predicting `target_cols` instead (None / empty: unchanged); a new target
        leaves the input columns (a table's features) and the id / group / split roles it held."""
        targets = _names(target_cols, "target_cols")
        if not targets:
            return self
        keep = {key: (None if getattr(self, key) in targets else getattr(self, key))
                for key in ("id_col", "group_col", "split_col")}
        return replace(self, input_cols=tuple(c for c in self.input_cols if c not in targets), target_cols=targets,
                       **keep)

    def input_col(self, *, table: bool) -> str | None:
        """The one record column (None: the modality's default); always None for tables."""
        return None if table or not self.input_cols else self.input_cols[0]

    def feature_cols(self, *, table: bool) -> list[str] | None:
        """A table's feature columns (None: every column not mapped elsewhere); None for other inputs."""
        return list(self.input_cols) if table and self.input_cols else None

