"""Reading dataset files into records, splitting them, and encoding targets.

What lives here:
- `load_records(path, ...)`: CSV / TSV (optionally gzipped), FASTA and Parquet into `Record`s that
  remember their file line (or Parquet row), with a column mapping (input, targets, id, group,
  split). Set and series modalities (particles, light curves) come in long format, one row per
  element grouped by an object id column, or as Parquet list columns, one row per object.
- `DataError`: one bad record or file, with a one-line message naming the file, line and reason
  (`train.csv line 17: invalid nucleotide 'Q' at position 5 in column 'sequence'`).
- `split_indices(...)`: random, stratified, scaffold (RDKit Bemis-Murcko), group and column splits,
  seeded and reproducible.
- `TargetEncoder`: class labels -> ids, per-token label strings -> id arrays, numeric targets ->
  standardized floats (statistics from the training split only) and back.

The dataset issue builds streaming validation on top of these; here files are read whole, which is
what training needs anyway.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcore.catalog import MODALITIES

SPLIT_METHODS = ("random", "stratified", "scaffold", "group", "column")
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
# Raw rows


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    # utf-8-sig drops the byte-order mark spreadsheet programs write.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _base_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _rows_delimited(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]], str]:
    """(header, iterator of (line, row dict), unit) for a CSV / TSV file."""
    suffix = _base_suffix(path)
    handle = _open_text(path)
    if suffix in (".tsv", ".tab"):
        delimiter = "\t"
    elif suffix == ".csv":
        delimiter = ","
    else:
        sample = handle.read(65536)
        handle.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    # Whole chromosomes or long proteins in one cell exceed csv's default 128 KiB field limit.
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(path.name, "empty file (no header line)") from None
    except csv.Error as exc:
        raise DataError(path.name, f"unreadable header: {exc}", line=1) from None

    def records() -> Iterator[list[str]]:
        while True:
            try:
                yield next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a NUL byte or an unterminated quote
                raise DataError(path.name, f"malformed {'CSV' if delimiter == ',' else 'TSV'}: {exc}",
                                line=reader.line_num) from None

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        start = reader.line_num + 1
        for values in records():
            # csv's line_num is the line where the record ended; a record spans start..line_num.
            line = start
            start = reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue  # blank lines carry no record
            if len(values) != len(header):
                raise DataError(path.name, f"{len(values)} fields, the header has {len(header)}", line=line)
            yield line, dict(zip(header, values))
        handle.close()

    return header, rows(), "line"


def _rows_parquet(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]], str]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several error types for unreadable files
        raise DataError(path.name, f"unreadable Parquet file: {exc}") from None
    header = list(table.column_names)
    return header, ((i + 1, row) for i, row in enumerate(table.to_pylist())), "row"


def _rows_fasta(path: Path) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]], str]:
    """FASTA records as rows: `id`, `sequence` and every `key=value` field of the header."""
    records: list[tuple[int, dict[str, str]]] = []
    keys: list[str] = ["id", "sequence"]
    current: dict[str, str] | None = None
    chunks: list[str] = []
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith(";"):
                continue
            if line.startswith(">"):
                if current is not None:
                    current["sequence"] = "".join(chunks)
                parts = line[1:].split()
                if not parts:
                    raise DataError(path.name, "FASTA header without an id", line=line_no)
                current = {"id": parts[0]}
                for part in parts[1:]:
                    if "=" in part:
                        key, value = part.split("=", 1)
                        current[key] = value
                        if key not in keys:
                            keys.append(key)
                records.append((line_no, current))
                chunks = []
            elif current is None:
                raise DataError(path.name, "sequence data before the first '>' header", line=line_no)
            else:
                chunks.append(line)
    if current is not None:
        current["sequence"] = "".join(chunks)
    for _, rec in records:
        for key in keys:
            rec.setdefault(key, "")
    return keys, iter(records), "line"


def read_rows(path: str | Path) -> tuple[list[str], Iterator[tuple[int, dict[str, Any]]], str]:
    """(columns, iterator of (line or row number, row dict), unit) for any supported file."""
    path = Path(path)
    if not path.exists():
        raise DataError(path.name, f"file not found: {path}")
    suffix = _base_suffix(path)
    if suffix in (".parquet", ".pq"):
        return _rows_parquet(path)
    if suffix in (".fasta", ".fa", ".fna", ".faa", ".fas"):
        return _rows_fasta(path)
    return _rows_delimited(path)


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
    formats); `id_col` to `id` when the file has such a column (FASTA always does); `target_cols` must be given by the caller (the task knows its default). With
    `require_target=False` (prediction) target columns are read when present and ignored otherwise.
    For tabular data every column that is not a target / id / group / split column is a feature
    unless `feature_cols` says otherwise.
    """
    path = Path(path)
    name = path.name
    spec = MODALITIES[modality]
    columns, rows, unit = read_rows(path)
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
            for i, (line, row) in enumerate(rows)
        ]
        table = Table(name, records, "", target_cols, id_col, unit, features)
    elif spec.input_format == "long":
        if input_col not in columns:
            raise DataError(name, f"no object id column {input_col!r} (columns: {', '.join(columns)}); "
                                  "choose it with --input-col")
        records = _long_records(name, rows, columns, spec.element_fields, input_col, target_cols, target_of,
                                group_col, split_col)
        table = Table(name, records, input_col, target_cols, id_col or input_col, unit)
    else:
        if input_col not in columns:
            raise DataError(name, f"no input column {input_col!r} (columns: {', '.join(columns)}); "
                                  "choose it with --input-col")
        records = [
            Record(line=line, id=str(row[id_col]) if id_col else str(i), input=_clean(row[input_col]),
                   target=target_of(row), group=_opt(row, group_col), split=_opt(row, split_col))
            for i, (line, row) in enumerate(rows)
        ]
        table = Table(name, records, input_col, target_cols, id_col, unit)
    if not table.records:
        raise DataError(name, "no records")
    return table


def _opt(row: dict[str, Any], col: str | None) -> str | None:
    return None if not col else str(_clean(row[col]))


def _long_records(name: str, rows: Iterator[tuple[int, dict[str, Any]]], columns: list[str],
                  required: Sequence[str], id_col: str, target_cols: Sequence[str], target_of: Any,
                  group_col: str | None, split_col: str | None) -> list[Record]:
    """Group one-row-per-element files by object id (or take list columns as one object per row)."""
    absent = [f for f in required if f not in columns]
    if absent:
        raise DataError(name, f"no column {absent[0]!r} (a long-format file needs {', '.join(required)})")
    reserved = {id_col, group_col, split_col, *target_cols}
    element_cols = [c for c in columns if c not in reserved]
    objects: dict[str, Record] = {}
    elements: dict[str, dict[str, list[Any]]] = {}
    targets_seen: dict[str, Any] = {}
    for line, row in rows:
        oid = str(_clean(row[id_col]))
        first = row[required[0]]
        if isinstance(first, (list, tuple, np.ndarray)):  # Parquet list columns: the row is the object
            fields = {c: list(row[c]) for c in element_cols if isinstance(row[c], (list, tuple, np.ndarray))}
            objects[oid + f"#{line}"] = Record(line, oid, fields, target_of(row), _opt(row, group_col), _opt(row, split_col))
            continue
        if oid not in objects:
            objects[oid] = Record(line, oid, None, target_of(row), _opt(row, group_col), _opt(row, split_col))
            elements[oid] = defaultdict(list)
            targets_seen[oid] = target_of(row)
        elif target_of(row) != targets_seen[oid]:
            raise DataError(name, f"object {oid!r} has target {target_of(row)!r} here but "
                                  f"{targets_seen[oid]!r} on line {objects[oid].line}", line=line)
        for c in element_cols:
            value = row[c]
            if c == "band":
                elements[oid][c].append(str(_clean(value)))
                continue
            number = _to_float(value)
            if number is None:
                if c in required:
                    raise DataError(name, f"non-numeric value {value!r}", line=line, column=c)
                continue  # a non-numeric side column (a name, a comment) is not an element feature
            elements[oid][c].append(number)
    records = []
    for key, rec in objects.items():
        if rec.input is None:
            fields = elements[key]
            n = len(fields[required[0]])
            # Drop side columns that were not numeric on every row of this object.
            rec.input = {c: np.asarray(v) for c, v in fields.items() if len(v) == n}
        records.append(rec)
    return records


def _to_float(value: Any) -> float | None:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) index arrays, sorted; the same inputs and seed always give the same split.

    - random: a seeded permutation.
    - stratified: each class split in the same proportions (needs `labels`).
    - scaffold: molecules grouped by Bemis-Murcko scaffold (needs `smiles`); no scaffold spans two
      parts. Scaffold sets larger than half the test share go to train first, the rest in seeded
      random order (Chemprop's balanced scaffold split), so test is not just the rarest scaffolds.
    - group: whole groups (needs `groups`, e.g. a patient or organism column) in seeded order.
    - column: `split_values` says train / val (valid, validation) / test per record.
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
        names = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, value in enumerate(split_values):
            part = names.get(str(value).strip().lower())
            if part is None:
                raise ValueError(f"record {i}: split value {value!r} is not train / val / test")
            parts[part].append(i)
        train, val, test = parts["train"], parts["val"], parts["test"]
    out = tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in (train, val, test))
    if len(out[0]) == 0:
        raise ValueError(f"the {method} split left no training records")
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class TargetEncoder:
    """Turns raw target values into training labels and model outputs back into predictions.

    `kind` is the resolved target kind. Classification keeps `classes` (sorted numerically when every
    label is a number, else as text; index = class id); token labels keep the label alphabet;
    regression keeps per-target mean / std for standardization (fitted on the training split).
    """

    kind: str
    target_cols: list[str]
    classes: list[str] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, kind: str, target_cols: Sequence[str], values: Sequence[Any]) -> TargetEncoder:
        """Fit on the training split's raw targets (already checked by `parse`)."""
        enc = cls(kind=kind, target_cols=list(target_cols))
        if kind in ("binary", "multiclass"):
            labels = {str(v) for v in values}
            enc.classes = sorted(labels, key=_label_sort_key)
        elif kind == "token_labels":
            enc.classes = sorted({c for v in values for c in str(v)})
        else:
            arr = np.asarray([enc._numbers(v) for v in values], dtype=np.float64)  # (N, K)
            with np.errstate(all="ignore"):
                mean = np.nanmean(arr, axis=0)
                std = np.nanstd(arr, axis=0)
            enc.mean = np.nan_to_num(mean).tolist()
            enc.std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0).tolist()
        return enc

    @staticmethod
    def resolve_kind(task_kind: str, target_cols: Sequence[str], values: Sequence[Any]) -> str:
        """Binary or multiclass from the number of classes; regression or multi-target from columns."""
        if task_kind in ("binary", "multiclass"):
            n = len({str(v) for v in values})
            if n < 2:
                raise ValueError(f"classification needs at least 2 classes in the training data, found {n}")
            return "binary" if n == 2 else "multiclass"
        if task_kind in ("regression", "multi_regression"):
            return "regression" if len(target_cols) == 1 else "multi_regression"
        return task_kind

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "target_cols": self.target_cols, "classes": self.classes,
                "mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TargetEncoder:
        return cls(**state)

    @property
    def n_outputs(self) -> int:
        if self.kind in ("binary", "multiclass", "token_labels"):
            return len(self.classes)
        return len(self.target_cols)

    def _numbers(self, value: Any) -> list[float]:
        values = value if isinstance(value, list) else [value]
        out = []
        for v in values:
            number = _to_float(v) if v is not None and str(v).strip() != "" else math.nan
            if number is None:
                raise ValueError(f"non-numeric target {v!r}")
            if math.isinf(number):
                raise ValueError(f"infinite target {v!r}")
            out.append(number)
        return out

    def check(self, value: Any, n_tokens: int | None = None) -> None:
        """Raise ValueError with the reason when `value` is not a valid target (before fitting)."""
        if value is None or (isinstance(value, str) and value == ""):
            if self.kind != "multi_regression":
                raise ValueError("missing target")
        if self.kind in ("regression", "multi_regression"):
            numbers = self._numbers(value)
            if self.kind == "regression" and math.isnan(numbers[0]):
                raise ValueError("missing target")
            if all(math.isnan(x) for x in numbers):
                raise ValueError("every target is missing")
        elif self.kind == "token_labels" and n_tokens is not None and len(str(value)) != n_tokens:
            raise ValueError(f"{len(str(value))} per-token labels for a sequence of {n_tokens} tokens")

    def encode(self, value: Any) -> Any:
        """Raw target -> label for the head (class id, label-id array, standardized float array)."""
        if self.kind in ("binary", "multiclass"):
            text = str(value)
            if text not in self.classes:
                raise ValueError(f"label {text!r} was not seen in training (classes: {', '.join(self.classes)})")
            return self.classes.index(text)
        if self.kind == "token_labels":
            ids = {c: i for i, c in enumerate(self.classes)}
            return np.asarray([ids.get(c, IGNORE_INDEX) for c in str(value)], dtype=np.int64)
        numbers = np.asarray(self._numbers(value), dtype=np.float64)
        return ((numbers - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def decode_regression(self, outputs: np.ndarray) -> np.ndarray:
        """Standardized outputs (N, K) -> target units."""
        return outputs * np.asarray(self.std) + np.asarray(self.mean)

    def metric_inputs(self, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        """Per-example logits and encoded labels -> (y_true, y_score) for metrics, in target units."""
        if self.kind in ("regression", "multi_regression"):
            y_score = self.decode_regression(np.stack([np.asarray(x).reshape(-1) for x in logits]))
            y_true = self.decode_regression(np.stack([np.asarray(y, dtype=np.float64).reshape(-1) for y in labels]))
            if self.kind == "regression":
                return y_true[:, 0], y_score[:, 0]
            return y_true, y_score
        if self.kind == "token_labels":
            return list(labels), list(logits)
        return np.asarray([int(np.asarray(y).reshape(-1)[0]) for y in labels]), np.stack(logits)


def _label_sort_key(label: str) -> tuple[int, float, str]:
    number = _to_float(label)
    return (0, number, label) if number is not None and math.isfinite(number) else (1, 0.0, label)

