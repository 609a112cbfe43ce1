"""Reading dataset files into records, splitting them, and encoding targets.

What lives here:
- `load_records(path, ...)`: CSV / TSV (optionally gzipped), FASTA, SDF and Parquet into `Record`s
  that remember their file line (or Parquet row), with a column mapping (input, targets, id, group,
  split). Set and series modalities (particles, light curves) come in long format, one row per
  element grouped by an object id column, or as Parquet list columns, one row per object. Files are
  parsed by `mlcore.readers`, the streaming readers validation uses, so training and validation
  read a file the same way; a canonical copy written by validation keeps its records' original
  lines.
- `DataError`: one bad record or file, with a one-line message naming the file, line and reason
  (`train.csv line 17: invalid nucleotide 'Q' at position 5 in column 'sequence'`).
- `split_indices(...)`: random, stratified, scaffold (RDKit Bemis-Murcko), group and column splits,
  seeded and reproducible.
- `TargetEncoder`: class labels -> ids, per-token label strings -> id arrays, numeric targets ->
  standardized floats (statistics from the training split only) and back.

Training holds the whole file in memory anyway, so unlike validation it stops at the first bad
record, and merges the rows of a long-format object even when they are not contiguous.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.catalog import MODALITIES, SPLIT_METHODS as _SPLIT_METHODS, SPLIT_VALUES
from mlcore.kinds import Kind, kind_get
from mlcore.kinds.base import to_float
from mlcore.readers import (
    SDF_MOL_COLUMN, SDF_NAME_COLUMN, SOURCE_LINE_COL, SOURCE_NAME_KEY, SOURCE_UNIT_KEY, Chunk, Reader, ReadError,
    group_long, reader_open,
)

SPLIT_METHODS = tuple(_SPLIT_METHODS)
IGNORE_INDEX = -100  # token positions without a label, as the token head expects


class DataError(ValueError):
    """A problem with an input file or one of its records; `str()` is the one-line user message."""

    def __init__(self, source: str, reason: str, *, line: int | None = None, column: str | None = None,
                 unit: str = "line") -> None:
        self.source, self.reason, self.line, self.column, self.unit = source, reason, line, column, unit
        where = f"{source} {unit} {line}" if line is not None else source
        suffix = f" in column {column!r}" if column else ""
        super().__init__(f"{where}: {reason}{suffix}")


@dataclass
class Record:
    """One input record as read from a file, before featurization."""

    line: int  # 1-based file line (CSV: the header is line 1) or Parquet row; FASTA: the header line
    id: str
    input: Any  # str for sequences / SMILES; dict of arrays (long format) or of column values (tabular)
    target: Any = None  # raw target: str, list of str (several target columns), or None
    group: str | None = None
    split: str | None = None


@dataclass
class Table:
    """The records of one file plus how its columns were mapped."""

    source: str  # file name used in messages
    records: list[Record]
    input_col: str
    target_cols: list[str]
    id_col: str | None
    unit: str = "line"  # "line" (text files) or "row" (Parquet)
    feature_cols: list[str] = field(default_factory=list)  # tabular only

    def error(self, record: Record, reason: str, column: str | None = None) -> DataError:
        """A DataError pointing at `record`."""
        return DataError(self.source, reason, line=record.line, column=column, unit=self.unit)


# ---------------------------------------------------------------------------------------------
# Reading: every format goes through mlcore.readers, the same parser validation uses


def _read_error(exc: ReadError) -> DataError:
    return DataError(exc.source, exc.reason, line=exc.line)


def _chunks(reader: Reader, columns: Sequence[str], line_col: str | None) -> Iterator[Chunk]:
    """The reader's chunks of `columns`. Training stops at the first row the reader could not split
    (the validator instead lists it as a bad record). With `line_col` (a canonical copy's
    source_line) the chunk's lines become the original file's lines."""
    try:
        for chunk in reader.chunks([*columns, line_col] if line_col else columns):
            if chunk.errors:
                i, _, column, message, _ = chunk.errors[0]
                raise DataError(reader.source, message, line=chunk.lines[i], column=column)
            if line_col:
                chunk.lines = [int(x) for x in chunk.columns.pop(line_col)]
            yield chunk
    except ReadError as exc:  # e.g. a NUL byte half-way through a CSV
        raise _read_error(exc) from None


def _rows(reader: Reader, columns: Sequence[str], line_col: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, row dict) per record."""
    text = reader.unit == "line"
    for chunk in _chunks(reader, columns, line_col):
        values = [chunk.columns[c] for c in columns]
        for i, line in enumerate(chunk.lines):
            row = [v[i] for v in values]
            if text:
                row = ["" if v is None else v for v in row]  # a FASTA header field or SDF property it lacks
                if not any(v.strip() for v in row):
                    continue  # a line of only delimiters carries no record
            yield line, dict(zip(columns, row))


def _origin(reader: Reader) -> tuple[str, str, str | None]:
    """(file name, unit, line column) for messages: a canonical copy written by validation names the
    original file and its lines (`source_line`), any other file names itself."""
    if reader.format != "parquet" or SOURCE_LINE_COL not in reader.columns:
        return reader.source, reader.unit, None
    import pyarrow.parquet as pq

    meta = pq.read_schema(reader.path).metadata or {}
    source = meta.get(SOURCE_NAME_KEY, reader.source.encode()).decode()
    return source, meta.get(SOURCE_UNIT_KEY, b"line").decode(), SOURCE_LINE_COL


def _molblock_smiles(block: str) -> str | None:
    """An SDF record's molecule as SMILES (the featurizer canonicalizes it), None when RDKit cannot read it."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromMolBlock(block, sanitize=True, removeHs=False)
    return None if mol is None else Chem.MolToSmiles(mol)


# ---------------------------------------------------------------------------------------------
# Records


def _clean(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def load_records(
    path: str | Path,
    *,
    modality: str,
    input_col: str | None = None,
    target_cols: Sequence[str] | None = None,
    id_col: str | None = None,
    group_col: str | None = None,
    split_col: str | None = None,
    require_target: bool = True,
    feature_cols: Sequence[str] | None = None,
) -> Table:
    """Read `path` into records for `modality` with the given column mapping.

    `input_col` defaults to the modality's (`sequence`, `smiles`, the object id column for long
    formats; an SDF file's molecules); `id_col` to `id` when the file has such a column (FASTA always
    does; SDF: the title line); `target_cols` must be given by the caller (the task knows its
    default). With `require_target=False` (prediction) target columns are read when present and
    ignored otherwise. For tabular data every column that is not a target / id / group / split
    column is a feature unless `feature_cols` says otherwise. A canonical Parquet copy written by
    validation is read with its records' original lines (`source_line`) and file name.
    """
    spec = MODALITIES[modality]
    try:
        reader = reader_open(path)
    except ReadError as exc:
        raise _read_error(exc) from None
    name, unit, line_col = _origin(reader)
    columns = [c for c in reader.columns if c != line_col]
    if reader.format == "sdf":
        if modality != "smiles":
            raise DataError(name, f"an SDF file holds molecules; it cannot be read as {modality}")
        input_col = input_col or SDF_MOL_COLUMN
        id_col = id_col or SDF_NAME_COLUMN
    input_col = input_col or spec.default_input_col
    if id_col is None and "id" in columns and input_col != "id":
        id_col = "id"  # FASTA ids, and an `id` column is an identifier, never a tabular feature
    target_cols = list(target_cols or [])
    missing_targets = [c for c in target_cols if c not in columns]
    if missing_targets and require_target:
        raise DataError(name, f"no target column {missing_targets[0]!r} (columns: {', '.join(columns)}); "
                              "choose one with --target-col")
    target_cols = [c for c in target_cols if c in columns]
    for col, flag in ((id_col, "--id-col"), (group_col, "--group-col"), (split_col, "--split-col")):
        if col and col not in columns:
            raise DataError(name, f"no column {col!r} (columns: {', '.join(columns)}); check {flag}")

    def target_of(row: dict[str, Any]) -> Any:
        if not target_cols:
            return None
        values = [_clean(row[c]) for c in target_cols]
        return values[0] if len(values) == 1 else values

    if spec.input_format == "table":
        reserved = set(target_cols) | {c for c in (id_col, group_col, split_col) if c}
        features = list(feature_cols) if feature_cols else [c for c in columns if c not in reserved]
        absent = [c for c in features if c not in columns]
        if absent:
            raise DataError(name, f"no feature column {absent[0]!r} (columns: {', '.join(columns)})")
        if not features:
            raise DataError(name, "no feature columns left after the target / id columns")
        records = [
            Record(line=line, id=str(row[id_col]) if id_col else str(i), input={c: row[c] for c in features},
                   target=target_of(row), group=_opt(row, group_col), split=_opt(row, split_col))
            for i, (line, row) in enumerate(_rows(reader, columns, line_col))
        ]
        table = Table(name, records, "", target_cols, id_col, unit, features)
    elif spec.input_format == "long":
        if input_col not in columns:
            raise DataError(name, f"no object id column {input_col!r} (columns: {', '.join(columns)}); "
                                  "choose it with --input-col")
        records = _long_records(name, reader, columns, line_col, spec.element_fields, input_col, target_cols,
                                target_of, group_col, split_col)
        table = Table(name, records, input_col, target_cols, id_col or input_col, unit)
    else:
        if input_col not in columns:
            raise DataError(name, f"no input column {input_col!r} (columns: {', '.join(columns)}); "
                                  "choose it with --input-col")
        records = [
            Record(line=line, id=str(row[id_col]) if id_col else str(i), input=_clean(row[input_col]),
                   target=target_of(row), group=_opt(row, group_col), split=_opt(row, split_col))
            for i, (line, row) in enumerate(_rows(reader, columns, line_col))
        ]
        if reader.format == "fasta":
            for r in records:
                if not r.id:
                    raise DataError(name, "FASTA header without an id", line=r.line)
        if input_col == SDF_MOL_COLUMN and reader.format == "sdf":
            for r in records:
                r.input = _molblock_smiles(r.input)
                if r.input is None:
                    raise DataError(name, "unreadable molecule (RDKit cannot parse its mol block)", line=r.line,
                                    column=input_col)
        table = Table(name, records, input_col, target_cols, id_col, unit)
    if not table.records:
        raise DataError(name, "no records")
    return table


def _opt(row: dict[str, Any], col: str | None) -> str | None:
    return None if not col else str(_clean(row[col]))


def _long_records(name: str, reader: Reader, columns: list[str], line_col: str | None, required: Sequence[str],
                  id_col: str, target_cols: Sequence[str], target_of: Any, group_col: str | None,
                  split_col: str | None) -> list[Record]:
    """One record per object: Parquet list columns are one object per row; one-row-per-element files
    are grouped by object id (`readers.group_long`), and, the whole file being read anyway, the rows
    of an object that reappear after other objects are merged into it (validation flags them)."""
    absent = [f for f in required if f not in columns]
    if absent:
        raise DataError(name, f"no column {absent[0]!r} (a long-format file needs {', '.join(required)})")
    reserved = {id_col, group_col, split_col, *target_cols}
    element_cols = [c for c in columns if c not in reserved]
    if required[0] in reader.list_columns:
        return [Record(line, str(_clean(row[id_col])),
                       {c: list(row[c]) for c in element_cols if isinstance(row[c], (list, tuple, np.ndarray))},
                       target_of(row), _opt(row, group_col), _opt(row, split_col))
                for line, row in _rows(reader, columns, line_col)]

    # Targets, group and split travel as per-row values too, so a row that disagrees with its
    # object's first row can be named by its own line.
    row_cols = [*element_cols, *dict.fromkeys(c for c in (*target_cols, group_col, split_col) if c)]
    objects: dict[str, tuple[list[int], dict[str, list[Any]]]] = {}
    for chunk in group_long(_chunks(reader, [id_col, *row_cols], line_col), id_col=id_col, element_cols=row_cols,
                            record_cols=(), max_elements=sys.maxsize):
        assert chunk.element_lines is not None
        for i, oid in enumerate(chunk.columns[id_col]):
            lines, fields = objects.setdefault(str(oid), ([], {c: [] for c in row_cols}))
            lines += chunk.element_lines[i]
            for c in row_cols:
                fields[c] += chunk.columns[c][i]

    records = []
    problems: list[tuple[int, int, DataError]] = []  # (line, column order, error): the file's first is raised
    for oid, (lines, fields) in objects.items():
        first = {c: values[0] for c, values in fields.items()}
        target = target_of(first)
        for k in range(1, len(lines)):
            other = target_of({c: fields[c][k] for c in target_cols})
            if other != target:
                problems.append((lines[k], 0, DataError(
                    name, f"object {oid!r} has target {other!r} here but {target!r} on line {lines[0]}", line=lines[k])))
                break
        inputs: dict[str, np.ndarray] = {}
        for j, c in enumerate(element_cols):
            if c == "band":
                inputs[c] = np.asarray([str(_clean(v)) for v in fields[c]])
                continue
            numbers = [to_float(v) for v in fields[c]]
            bad = next((k for k, x in enumerate(numbers) if x is None), None)
            if bad is None:
                inputs[c] = np.asarray(numbers)
            elif c in required:
                problems.append((lines[bad], 1 + j, DataError(name, f"non-numeric value {fields[c][bad]!r}",
                                                              line=lines[bad], column=c)))
            # else: a side column not numeric on every row (a name, a comment) is no element feature
        records.append(Record(lines[0], oid, inputs, target, _opt(first, group_col), _opt(first, split_col)))
    if problems:
        raise min(problems, key=lambda p: p[:2])[2]
    return records


# ---------------------------------------------------------------------------------------------
# Splits


def scaffold_of(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES of a molecule ('' for acyclic molecules or unparsable input)."""
    from rdkit import Chem, rdBase
    from rdkit.Chem.Scaffolds import MurckoScaffold

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def _fractions(n: int, val_frac: float, test_frac: float) -> tuple[int, int]:
    n_test = int(round(n * test_frac))
    n_val = int(round(n * val_frac))
    if val_frac > 0 and n_val == 0 and n >= 3:
        n_val = 1
    if test_frac > 0 and n_test == 0 and n >= 3:
        n_test = 1
    if n - n_val - n_test < 1:
        raise ValueError(f"{n} records are too few to split into train / val / test")
    return n_val, n_test


def _assign_groups(groups: list[list[int]], n: int, val_frac: float, test_frac: float) -> tuple[list[int], list[int], list[int]]:
    """Fill test, then val, with whole groups in the given order; the rest is train."""
    n_val, n_test = _fractions(n, val_frac, test_frac)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for g in groups:
        if len(test) + len(g) <= n_test:
            test += g
        elif len(val) + len(g) <= n_val:
            val += g
        else:
            train += g
    return train, val, test


def _carve_val(train: list[int], val_frac: float, rng: np.random.Generator,
               labels: Sequence[Any] | None) -> tuple[list[int], list[int]]:
    """`val_frac` of `train` (at least one record, never all), per class when `labels` are given;
    a class with a single training record stays in train."""
    if labels is None:
        groups = [train]
    else:
        by_class: dict[str, list[int]] = defaultdict(list)
        for i in train:
            by_class[str(labels[i])].append(i)
        groups = [by_class[k] for k in sorted(by_class)]
    keep: list[int] = []
    val: list[int] = []
    for group in groups:
        idx = np.asarray(group)[rng.permutation(len(group))].tolist()
        k = min(int(round(len(idx) * val_frac)), len(idx) - 1)
        val += idx[:k]
        keep += idx[k:]
    if not val:  # too few per class to round to one: take one record from the largest class
        largest = max(groups, key=len)
        pick = largest[int(rng.integers(len(largest)))]
        keep.remove(pick)
        val = [pick]
    return keep, val


def split_indices(
    n: int,
    method: str,
    *,
    seed: int = 0,
    val_frac: float = 0.1,
    test_frac: float = 0.1,
    labels: Sequence[Any] | None = None,
    smiles: Sequence[str] | None = None,
    groups: Sequence[Any] | None = None,
    split_values: Sequence[Any] | None = None,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) index arrays, sorted; the same inputs and seed always give the same split.

    - random: a seeded permutation.
    - stratified: each class split in the same proportions (needs `labels`).
    - scaffold: molecules grouped by Bemis-Murcko scaffold (needs `smiles`); no scaffold spans two
      parts. Scaffold sets larger than half the test share go to train first, the rest in seeded
      random order (Chemprop's balanced scaffold split), so test is not just the rarest scaffolds.
    - group: whole groups (needs `groups`, e.g. a patient or organism column) in seeded order.
    - column: `split_values` says train / val (valid, validation) / test per record. A column with no
      validation rows gets `val_frac` of its training rows carved out as validation (seeded,
      stratified by class when `labels` are given): training without a validation set would have no
      early stopping and no best epoch. What was done is appended to `notes`.
    """
    rng = np.random.default_rng(seed)
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split {method!r}; valid: {', '.join(SPLIT_METHODS)}")
    if method == "random":
        perm = rng.permutation(n)
        n_val, n_test = _fractions(n, val_frac, test_frac)
        test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    elif method == "stratified":
        if labels is None:
            raise ValueError("a stratified split needs labels")
        by_class: dict[str, list[int]] = defaultdict(list)
        for i, y in enumerate(labels):
            by_class[str(y)].append(i)
        train, val, test = [], [], []
        for key in sorted(by_class):
            idx = np.asarray(by_class[key])[rng.permutation(len(by_class[key]))]
            k_test = int(round(len(idx) * test_frac))
            k_val = int(round(len(idx) * val_frac))
            test += idx[:k_test].tolist()
            val += idx[k_test:k_test + k_val].tolist()
            train += idx[k_test + k_val:].tolist()
    elif method in ("scaffold", "group"):
        if method == "scaffold" and smiles is None:
            raise ValueError("a scaffold split needs molecules (SMILES input)")
        if method == "group" and groups is None:
            raise ValueError("a group split needs a group column (--group-col)")
        keys = [scaffold_of(s) for s in smiles] if method == "scaffold" else groups
        sets: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            sets[str(key)].append(i)
        ordered = [sets[k] for k in sorted(sets)]
        order = rng.permutation(len(ordered))
        shuffled = [ordered[i] for i in order]
        if method == "scaffold":
            _, n_test = _fractions(n, val_frac, test_frac)
            big = [g for g in shuffled if len(g) > n_test / 2]
            small = [g for g in shuffled if len(g) <= n_test / 2]
            train_first = [i for g in big for i in g]
            train, val, test = _assign_groups(small, n, val_frac, test_frac)
            train = train_first + train
        else:
            train, val, test = _assign_groups(shuffled, n, val_frac, test_frac)
    else:  # column
        if split_values is None:
            raise ValueError("a column split needs a split column")
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, value in enumerate(split_values):
            part = SPLIT_VALUES.get(str(value).strip().lower())
            if part is None:
                raise ValueError(f"record {i}: split value {value!r} is not train / val / test")
            parts[part].append(i)
        train, val, test = parts["train"], parts["val"], parts["test"]
        if not val and val_frac > 0 and len(train) > 1:
            train, val = _carve_val(train, val_frac, rng, labels)
            if notes is not None:
                how = "stratified by class" if labels is not None else "at random"
                notes.append(f"the split column has no validation rows: {len(val)} of its {len(train) + len(val)} "
                             f"training records were held out as validation ({how}, val_frac {val_frac:g}, "
                             f"seed {seed})")
    out = tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in (train, val, test))
    if len(out[0]) == 0:
        raise ValueError(f"the {method} split left no training records")
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class TargetEncoder:
    """Turns raw target values into training labels and model outputs back into predictions.

    `kind` is the resolved target kind; the behaviour is its `mlcore.kinds` class, this object only
    holds the fitted state the kind keeps (saved with a model): `classes` (class labels, sorted
    numerically when every label is a number, else as text; index = class id; or a token label
    alphabet), `mean` / `std` (numeric targets, fitted on the training split).
    """

    kind: str
    target_cols: list[str]
    classes: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @property
    def kind_obj(self) -> Kind:
        """The run-time target kind (`mlcore.kinds.kind_get(self.kind)`)."""
        return kind_get(self.kind)

    @classmethod
    def fit(cls, kind: str, target_cols: Sequence[str], values: Sequence[Any]) -> TargetEncoder:
        """Fit on the training split's raw targets (already checked by `parse`)."""
        enc = cls(kind=kind, target_cols=list(target_cols))
        enc.kind_obj.fit(enc, values)
        return enc

    @staticmethod
    def resolve_kind(task_kind: str, target_cols: Sequence[str], values: Sequence[Any]) -> str:
        """The kind a task declared as `task_kind` runs as on these targets (binary or multiclass by
        the number of classes, one or several targets by the columns ...: the kind decides)."""
        return kind_get(task_kind).resolve(target_cols, values)

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "target_cols": self.target_cols, "classes": self.classes,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetEncoder:
        return cls(**state)

    @property
    def n_outputs(self) -> int:
        return self.kind_obj.n_outputs(self)

    def check(self, value: Any, n_tokens: int | None = None) -> None:
        """Raise ValueError with the reason when `value` is not a valid target (before fitting)."""
        self.kind_obj.check(self, value, n_tokens)

    def encode(self, value: Any) -> Any:
        """Raw target -> label for the head (class id, label-id array, standardized float array)."""
        return self.kind_obj.encode(self, value)

    def decode_regression(self, outputs: np.ndarray) -> np.ndarray:
        """Standardized outputs (N, K) -> target units."""
        return outputs * np.asarray(self.std) + np.asarray(self.mean)

    def metric_inputs(self, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        """Per-example logits and encoded labels -> (y_true, y_score) for metrics, in target units."""
        return self.kind_obj.metric_inputs(self, logits, labels)

    def decode(self, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Model outputs -> predictions in the user's terms (`Kind.decode`)."""
        return self.kind_obj.decode(self, logits)

    def true_labels(self, records: Sequence[Any], encoded: Sequence[Any]) -> list[Any]:
        """The records' true targets in the user's terms (`Kind.true_labels`)."""
        return self.kind_obj.true_labels(self, records, encoded)
