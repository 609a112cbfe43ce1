"""The plan: what a chunk's validation needs, small and picklable for the worker processes.

`_plan_build` resolves the column mapping against the file's columns (a case-insensitive match for a
default name), picks how records are read (one string, a mol block, long or list elements, a table)
and, for tables without declared numeric columns, `_infer_numeric` decides from the first chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mlcore import catalog
from mlcore.catalog import DEFAULT_SENTINELS, number_or_missing
from mlcore.kinds import kind_get
from mlcore.readers import SDF_MOL_COLUMN, Chunk, ColumnMapping, Reader, ReadError
from mlcore.validation.options import HARD_MAX_LEN, ValidationOptions


@dataclass(frozen=True)
class _Plan:
    modality: str
    input_kind: str  # "sequence" | "molblock" | "long" | "lists" | "table"
    input_col: str  # sequence / SMILES / mol column; the object id column for sets and series
    target_cols: tuple[str, ...]
    target_kind: str | None  # the kind (a key of mlcore.kinds) checking the targets; None: no task
    id_col: str | None
    group_col: str | None
    split_col: str | None
    element_cols: tuple[str, ...] = ()  # sets / series: required + optional fields present (file's names)
    required_cols: tuple[str, ...] = ()
    element_fields: tuple[str, ...] = ()  # the modality's field name of each element column
    feature_cols: tuple[str, ...] = ()  # tabular
    numeric_cols: frozenset[str] = frozenset()
    max_len: int = HARD_MAX_LEN
    default_max_len: int = 512
    min_len: int = 1
    min_elements: int | None = None  # None: the modality's own minimum (its rules)
    iupac: str = "warn"
    time_order: str = "sort"
    sentinels: tuple[float, ...] = DEFAULT_SENTINELS
    duplicates: bool = True

    @property
    def record_cols(self) -> tuple[str, ...]:
        """Per-record columns carried next to the input (targets, id, group, split), deduplicated."""
        cols = [*self.target_cols, self.id_col, self.group_col, self.split_col]
        out: list[str] = []
        for c in cols:
            if c and c not in out and c != self.input_col:
                out.append(c)
        return tuple(out)

    @property
    def read_cols(self) -> list[str]:
        if self.input_kind == "table":
            main = list(self.feature_cols)
        elif self.input_kind in ("long", "lists"):
            main = [self.input_col, *self.element_cols]
        else:
            main = [self.input_col]
        return main + [c for c in self.record_cols if c not in main]


def _resolve_col(name: str, columns: Sequence[str]) -> str | None:
    """`name` if present, else a case-insensitive match (a `SMILES` header for the `smiles` default)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _plan_build(reader: Reader, modality: str, task: catalog.Task | None, mapping: ColumnMapping,
                options: ValidationOptions) -> _Plan:
    spec = catalog.MODALITIES[modality]
    src, cols = reader.source, reader.columns

    def need(name: str, role: str, flag: str) -> str:
        found = _resolve_col(name, cols)
        if found is None:
            raise ReadError(src, f"no {role} column {name!r} (columns: {', '.join(cols)}); choose it with {flag}")
        return found

    targets = mapping.target_cols or ((task.default_target_col,) if task is not None else ())
    target_cols = tuple(need(t, "target", "--target-col") for t in targets)
    target_kind = kind_get(task.target_kind).validation_kind(target_cols) if task is not None else None
    id_col = need(mapping.id_col, "id", "--id-col") if mapping.id_col else (
        "id" if reader.format == "fasta" else None)
    group_col = need(mapping.group_col, "group", "--group-col") if mapping.group_col else None
    split_col = need(mapping.split_col, "split", "--split-col") if mapping.split_col else None
    max_len = options.max_len or HARD_MAX_LEN
    common = dict(target_cols=target_cols, target_kind=target_kind, id_col=id_col, group_col=group_col,
                  split_col=split_col, max_len=max_len, default_max_len=spec.default_max_len,
                  min_len=options.min_len, iupac=options.iupac, time_order=options.time_order,
                  sentinels=tuple(float(s) for s in options.sentinels), duplicates=options.duplicates)
    if options.iupac not in ("warn", "reject"):
        raise ValueError(f"iupac must be 'warn' or 'reject', got {options.iupac!r}")
    if options.time_order not in ("sort", "reject"):
        raise ValueError(f"time_order must be 'sort' or 'reject', got {options.time_order!r}")

    if spec.input_format == "table":
        reserved = set(target_cols) | {c for c in (id_col, group_col, split_col) if c}
        features = tuple(need(c, "feature", "--input-col") for c in mapping.input_cols) if mapping.input_cols \
            else tuple(c for c in cols if c not in reserved)
        if not features:
            raise ReadError(src, "no feature columns left after the target / id / group / split columns")
        numeric = frozenset(need(c, "numeric", "numeric_cols") for c in options.numeric_cols) \
            if options.numeric_cols is not None else frozenset()
        return _Plan(modality, "table", "", feature_cols=features, numeric_cols=numeric, **common)  # type: ignore[arg-type]

    if spec.input_format == "long":
        id_name = mapping.input_cols[0] if mapping.input_cols else spec.default_input_col
        object_col = need(id_name, "object id", "--input-col")
        absent = [f for f in spec.element_fields if _resolve_col(f, cols) is None]
        if absent:
            raise ReadError(src, f"no column {absent[0]!r}: a {modality} file needs "
                                 f"{', '.join(spec.element_fields)} (columns: {', '.join(cols)})")
        required = tuple(_resolve_col(f, cols) for f in spec.element_fields)  # type: ignore[misc]
        present = [(f, c) for f, c in ((f, _resolve_col(f, cols)) for f in spec.optional_fields) if c]
        optional = tuple(c for _, c in present)
        kind = "lists" if required[0] in reader.list_columns else "long"
        return _Plan(modality, kind, object_col, element_cols=required + optional,  # type: ignore[arg-type]
                     required_cols=required, element_fields=spec.element_fields + tuple(f for f, _ in present),
                     min_elements=options.min_elements, **common)

    if reader.format == "sdf":
        if modality != "smiles":
            raise ReadError(src, f"an SDF file holds molecules; it cannot be read as {modality}")
        return _Plan(modality, "molblock", SDF_MOL_COLUMN, **common)  # type: ignore[arg-type]
    input_name = mapping.input_cols[0] if mapping.input_cols else spec.default_input_col
    return _Plan(modality, "sequence", need(input_name, "input", "--input-col"), **common)  # type: ignore[arg-type]


def _infer_numeric(plan: _Plan, chunk: Chunk) -> frozenset[str]:
    """Numeric columns from the first chunk: at least 95% of the present values parse as numbers.

    The training featurizer calls a column numeric only when every value parses; a column with a few
    stray words is almost always a numeric column with typos, so those values are reported here
    (and, under `skip`, dropped) instead of silently turning the column categorical.
    """
    numeric = set()
    for c in plan.feature_cols:
        parsed = [number_or_missing(v) for v in chunk.columns[c]]
        present = [x for x in parsed if x is None or not math.isnan(x)]
        if present and sum(x is not None for x in present) >= 0.95 * len(present):
            numeric.add(c)
    return frozenset(numeric)
