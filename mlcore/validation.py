"""Per-record validation of uploaded datasets, the report, and the canonical Parquet copy.

`validate_file(path, modality=..., task=..., mapping=..., policy=..., options=..., output=...)` is
what the portal's validation task and `python -m mlcore validate` call. It streams the file through
a reader (`mlcore.readers`), checks every record with its modality's rules, checks targets when a
task is given, and, when `output` is given, writes the valid records canonicalized (canonical
SMILES, upper-case sequences, parsed lists for sets and series) to Parquet chunk by chunk. It returns
a `ValidationResult` whose `report()` is the JSON the portal stores and the CLI writes.

The record rules are not here: each modality's torch-free `mlcore/modalities/<m>/rules.py` holds
them (parse, check and canonicalize one record), and the featurizers and prediction call the same
functions, so validation accepts exactly what training accepts and a bad record gets the same
message (and code) everywhere. This module runs them over the file's chunks and keeps the
streaming, the targets, the statistics, the duplicates and the Parquet copy. It never imports the
featurizers (torch: 2 s and ~200 MB per process).

Speed: SMILES dominate (RDKit parse + canonicalization, ~85 us per drug-like molecule per core).
Chunks are validated by a pool of worker processes while the main process reads, orders results and
writes. Duplicates are found from 8-byte hashes of the canonical form, spilled to 16 bucket files
on disk and examined one bucket at a time, so memory stays flat whatever the file size.

Policies: `strict` (any bad record makes the dataset invalid) and `skip` (bad records are dropped,
counted and listed; the dataset is valid when at least `min_valid` good records remain and the
dataset-level checks hold, e.g. at least 2 examples per class).
"""

from __future__ import annotations

import hashlib
import heapq
import math
import os
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlcore import catalog
from mlcore.catalog import DEFAULT_SENTINELS, MISSING_STRINGS, SPLIT_VALUES, number_or_missing
from mlcore.kinds import kind_get
from mlcore.modalities import RecordError, RuleOptions, rules_get, view_get
from mlcore.readers import (
    DEFAULT_LIMITS, SDF_MOL_COLUMN, SOURCE_LINE_COL, SOURCE_NAME_KEY, SOURCE_UNIT_KEY, Chunk, ColumnMapping, Limits,
    Reader, ReadError, group_long, reader_open, value_text,
)

POLICIES = ("strict", "skip")

# The longest record any job can train on (the max_len hyperparameter's upper bound): the default
# hard limit at upload, because the job's own max_len is not known yet. Records above the modality's
# default max_len are counted in the stats so the researcher knows to raise it.
HARD_MAX_LEN = int(catalog.HYPERPARAMETERS["max_len"].max or 16384)

_N_BUCKETS = 16  # duplicate-detection spill files; memory at the end is 1/16 of the hashes
_RESERVOIR = 100_000  # target values kept for quantiles and histograms (exact below this count)
_WARNING_EXAMPLES = 20
_FEATURE_RESERVOIR = 10_000  # per tabular feature (a table may have a thousand columns)
_MAX_CATEGORIES = 1000  # distinct values told apart per categorical feature
_TOP_CATEGORIES = 10  # most frequent values listed per categorical feature


@dataclass(frozen=True)
class ValidationOptions:
    """Knobs of a validation run; the defaults suit an upload whose job settings are not known yet."""

    max_len: int | None = None  # hard limit on tokens / elements; None: HARD_MAX_LEN
    min_len: int = 1  # shortest sequence accepted
    iupac: str = "warn"  # DNA ambiguity codes other than N: "warn" (accepted, counted) or "reject"
    min_per_class: int = 2  # classification: fewer examples of a class cannot be split and evaluated
    max_classes: int = 1000  # more distinct labels than this means the target is not a class label
    min_valid: int = 1  # with `skip`: fewest valid records for a valid dataset
    # With `skip`: above this fraction of bad records the file is invalid anyway; that many bad
    # records nearly always mean a wrong column mapping or file, not a few typos worth dropping.
    max_invalid_fraction: float = 0.5
    sentinels: tuple[float, ...] = DEFAULT_SENTINELS  # tabular: numeric values meaning "missing"
    numeric_cols: tuple[str, ...] | None = None  # tabular: declared numeric columns (None: inferred)
    min_elements: int | None = None  # sets / series: None = particles 1, light curves 2 (as training)
    time_order: str = "sort"  # light curves: "sort" unordered times (warning) or "reject" them
    workers: int | None = None  # SMILES worker processes; None: the CPUs this process may use
    chunk_size: int = 4096
    max_problems: int = 1000  # problems listed in the report (totals count all of them)
    format: str | None = None  # force csv / tsv / fasta / sdf / parquet
    delimiter: str | None = None
    side_labels: str | None = None  # FASTA: CSV of labels keyed by record id
    duplicates: bool = True  # report duplicate records (after canonicalization)
    # Bounds on what one file may cost (see mlcore.readers.Limits; None: unbounded). The portal sets
    # them from its settings; exceeding one ends the run with one ReadError saying which.
    max_line_bytes: int | None = DEFAULT_LIMITS.max_line_bytes
    max_header_bytes: int | None = DEFAULT_LIMITS.max_header_bytes
    max_decompressed_bytes: int | None = DEFAULT_LIMITS.max_decompressed_bytes
    max_gzip_ratio: float | None = DEFAULT_LIMITS.max_gzip_ratio
    max_seconds: float | None = None  # wall-clock time for the whole validation

    def limits(self) -> Limits:
        return Limits(max_line_bytes=self.max_line_bytes, max_header_bytes=self.max_header_bytes,
                      max_decompressed_bytes=self.max_decompressed_bytes, max_gzip_ratio=self.max_gzip_ratio)


@dataclass
class Problem:
    """One bad record (or, with `line` None, a dataset-level problem)."""

    line: int | None
    column: str | None
    code: str  # stable, machine-readable
    reason: str  # human message
    value: str | None = None  # the offending value, cut to 80 characters

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "code": self.code, "reason": self.reason,
                "value": self.value}


@dataclass
class ValidationResult:
    """Everything `report()` serializes; `status` is "valid" or "invalid"."""

    source: str
    format: str
    unit: str
    modality: str
    task: str | None
    policy: str
    rows: int
    valid: int
    invalid: int
    problems: list[Problem]
    totals: dict[str, int]
    warnings: list[dict[str, Any]]
    stats: dict[str, Any]
    status: str
    output: str | None = None  # the canonical Parquet copy (written only when status is valid)
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    def report(self) -> dict[str, Any]:
        """The JSON-able report stored with the dataset and written by the CLI."""
        return {
            "source": self.source, "format": self.format, "unit": self.unit, "modality": self.modality,
            "task": self.task, "policy": self.policy, "status": self.status,
            "rows": self.rows, "valid": self.valid, "invalid": self.invalid,
            "problems": [p.as_dict() for p in self.problems],
            "problems_listed": len(self.problems),
            "totals": self.totals, "warnings": self.warnings, "stats": self.stats,
            "columns": self.columns, "output": self.output,
        }


# ---------------------------------------------------------------------------------------------
# The plan: what a chunk's validation needs, small and picklable for the worker processes.


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


# ---------------------------------------------------------------------------------------------
# One chunk: every per-record check. Runs in a worker process (SMILES) or in the main process.


@dataclass
class _ChunkResult:
    n: int
    n_invalid: int
    problems: list[tuple[int | None, str | None, str, str, str | None]]  # (line, column, code, reason, value)
    totals: Counter[str]
    warnings: Counter[str]
    warning_examples: list[tuple[str, int, str]]  # (code, line, message)
    out: dict[str, list[Any]]  # canonical columns of the valid records, SOURCE_LINE_COL included
    lengths: np.ndarray  # (n_valid,) tokens / bases / residues / elements
    numbers: np.ndarray | None = None  # (n_valid, k) regression targets, NaN = missing
    labels: list[str] | None = None  # classification labels of the valid records
    label_chars: Counter[str] | None = None  # per-token label characters
    keys: np.ndarray | None = None  # (n_valid,) uint64 hashes of the canonical input
    target_keys: np.ndarray | None = None  # (n_valid,) uint64 hashes of the target
    missing: Counter[str] | None = None  # tabular: missing values per column
    times_unordered: int = 0


class _Collector:
    """Accumulates one chunk's problems and warnings; `bad` is the set of invalid record indices."""

    def __init__(self, chunk: Chunk, max_problems: int) -> None:
        self.lines = chunk.lines
        self.bad: set[int] = set()
        self.problems: list[tuple[int | None, str | None, str, str, str | None]] = []
        self.totals: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.examples: list[tuple[str, int, str]] = []
        self.max_problems = max_problems
        for index, code, column, message, value in chunk.errors:
            self.problem(index, code, column, message, value)

    def problem(self, i: int, code: str, column: str | None, reason: str, value: Any = None,
                line: int | None = None) -> None:
        self.bad.add(i)
        self.totals[code] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append((line or self.lines[i], column, code, reason,
                                  None if value is None else value_text(value)))

    def warn(self, i: int, code: str, message: str) -> None:
        self.warnings[code] += 1
        if self.warnings[code] <= _WARNING_EXAMPLES:
            self.examples.append((code, self.lines[i], message))


def _hash64(text: str) -> int:
    """A process-independent 8-byte hash (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


_WORKER_PLAN: _Plan | None = None
_WORKER_MAX_PROBLEMS = 1000


def _worker_init(plan: _Plan, max_problems: int) -> None:
    global _WORKER_PLAN, _WORKER_MAX_PROBLEMS
    _WORKER_PLAN, _WORKER_MAX_PROBLEMS = plan, max_problems


def _worker_chunk(chunk: Chunk) -> _ChunkResult:
    assert _WORKER_PLAN is not None
    return validate_chunk(_WORKER_PLAN, chunk, max_problems=_WORKER_MAX_PROBLEMS)


def validate_chunk(plan: _Plan, chunk: Chunk, *, max_problems: int = 1000) -> _ChunkResult:
    """Check every record of `chunk` under `plan`; the canonical columns of the valid ones."""
    col = _Collector(chunk, max_problems)
    n = len(chunk)
    extra: dict[str, Any] = {}
    if plan.input_kind in ("sequence", "molblock"):
        canon, lengths = _check_sequences(plan, chunk, col)
        inputs: dict[str, list[Any]] = {plan.input_col if plan.input_kind == "sequence" else "smiles": canon}
    elif plan.input_kind in ("long", "lists"):
        inputs, lengths, extra["times_unordered"] = _check_elements(plan, chunk, col)
    else:
        inputs, lengths, extra["missing"] = _check_table(plan, chunk, col)
    targets = _check_targets(plan, chunk, col, lengths)
    if plan.split_col:
        for i, value in enumerate(chunk.columns[plan.split_col]):
            key = str(value).strip().lower() if value is not None else ""
            if key not in SPLIT_VALUES:
                col.problem(i, "split_value", plan.split_col,
                            f"split must be train, val (valid, validation) or test, got {value!r}", value)

    keep = [i for i in range(n) if i not in col.bad]
    out: dict[str, list[Any]] = {SOURCE_LINE_COL: [chunk.lines[i] for i in keep]}
    for name, values in inputs.items():
        out[name] = [values[i] for i in keep]
    for name in plan.record_cols:
        if name in targets:
            out[name] = [targets[name][i] for i in keep]
        elif name == plan.split_col:
            out[name] = [SPLIT_VALUES[str(chunk.columns[name][i]).strip().lower()] for i in keep]
        else:
            out[name] = [None if chunk.columns[name][i] is None else str(chunk.columns[name][i]).strip()
                         for i in keep]
    result = _ChunkResult(n, len(col.bad), col.problems, col.totals, col.warnings, col.examples, out,
                          np.asarray([lengths[i] for i in keep], dtype=np.int64), **extra)
    if plan.target_kind is not None:
        kind_get(plan.target_kind).validation_summary(result, plan, out)
    if plan.duplicates and plan.input_kind in ("sequence", "molblock"):
        key_col = out[next(iter(inputs))]
        result.keys = np.fromiter((_hash64(s) for s in key_col), dtype=np.uint64, count=len(key_col))
        if result.numbers is not None:
            # Numeric targets: the float64 bit patterns, mixed across columns, are a key for free.
            bits = np.ascontiguousarray(result.numbers).view(np.uint64)  # (n_valid, k)
            keys = bits[:, 0].copy()
            for j in range(1, bits.shape[1]):
                keys = keys * np.uint64(1_000_003) ^ bits[:, j]
            result.target_keys = keys
        elif plan.target_cols:
            texts = ["\x1f".join(repr(out[c][j]) for c in plan.target_cols) for j in range(len(keep))]
            result.target_keys = np.fromiter((_hash64(s) for s in texts), dtype=np.uint64, count=len(texts))
        else:
            result.target_keys = np.zeros(len(keep), dtype=np.uint64)
    return result


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value).strip()


def _rule_options(plan: _Plan) -> tuple[Any, RuleOptions]:
    """The modality's rules module and the options this plan gives them."""
    rules = rules_get(plan.modality)
    quiet = True
    if hasattr(rules, "silence"):  # e.g. RDKit's stderr log, off once per process instead of per record
        rules.silence()
        quiet = False
    return rules, RuleOptions(max_len=plan.max_len, min_len=plan.min_len, min_elements=plan.min_elements,
                              iupac=plan.iupac, time_order=plan.time_order, sentinels=plan.sentinels,
                              numeric=plan.numeric_cols, molblock=plan.input_kind == "molblock", quiet=quiet)


def _check_sequences(plan: _Plan, chunk: Chunk, col: _Collector) -> tuple[list[Any], list[int]]:
    """One string (or mol block) per record, checked and canonicalized by the modality's rules."""
    rules, options = _rule_options(plan)
    molblock = plan.input_kind == "molblock"
    name = plan.input_col
    canon: list[Any] = []
    lengths: list[int] = []
    bad = col.bad
    at = [0]  # the record being checked, for warnings (one closure per chunk, not per record)

    def warn(code: str, message: str) -> None:
        col.warn(at[0], code, message)

    check = rules.check
    for i, raw in enumerate(chunk.columns[name]):
        if i in bad:
            canon.append(None)
            lengths.append(0)
            continue
        at[0] = i
        try:
            checked = check(raw if molblock else _text(raw), options, warn)
        except RecordError as exc:
            col.problem(i, exc.code, name, str(exc), raw)
            canon.append(None)
            lengths.append(0)
            continue
        canon.append(checked.value)
        lengths.append(checked.length)
    return canon, lengths


def _check_targets(plan: _Plan, chunk: Chunk, col: _Collector, lengths: list[int]) -> dict[str, list[Any]]:
    """Targets per the task's kind; returns the parsed target columns (floats or label strings)."""
    kind = plan.target_kind
    out: dict[str, list[Any]] = {}
    if kind is None:
        return out
    # A row the reader could not split has no values to judge: its one problem is the field count.
    unread = {e[0] for e in chunk.errors}
    return kind_get(kind).validation_parse(plan, chunk, col, lengths, unread)


def _check_elements(plan: _Plan, chunk: Chunk, col: _Collector) -> tuple[dict[str, list[Any]], list[int], int]:
    """Sets and series: each object's per-element lists checked and canonicalized (time-sorted light
    curves) by the modality's rules; a problem names the element's own line when the file has one."""
    rules, options = _rule_options(plan)
    n = len(chunk)
    out: dict[str, list[Any]] = {plan.input_col: [_text(v) for v in chunk.columns[plan.input_col]]}
    for c in plan.element_cols:
        out[c] = [None] * n
    column_of = dict(zip(plan.element_fields, plan.element_cols))
    lengths = [0] * n
    unordered = 0
    for i in range(n):
        if i in col.bad:
            continue
        elines = chunk.element_lines[i] if chunk.element_lines else None
        record = {f: chunk.columns[c][i] for f, c in column_of.items()}
        notes: list[str] = []

        def warn(code: str, message: str, i: int = i) -> None:
            notes.append(code)
            col.warn(i, code, message)

        try:
            checked = rules.check(record, options, warn)
        except RecordError as exc:
            if exc.field is None:  # the object as a whole (too few or too many elements)
                col.problem(i, exc.code, plan.input_col, str(exc), out[plan.input_col][i])
            else:
                line = elines[exc.index] if elines and exc.index is not None and exc.index < len(elines) else None
                col.problem(i, exc.code, column_of.get(exc.field, exc.field), str(exc), exc.value, line=line)
            continue
        unordered += "times_unordered" in notes
        lengths[i] = checked.length
        for f, c in column_of.items():
            out[c][i] = checked.value[f]
    return out, lengths, unordered


def _check_table(plan: _Plan, chunk: Chunk, col: _Collector) -> tuple[dict[str, list[Any]], list[int], Counter[str]]:
    """Tabular: every cell by the tabular rules (`cell`), column by column so that every bad cell of a
    row is listed; missing values (missing strings, NaN, sentinels) become nulls and are counted."""
    cell = rules_get(plan.modality).cell
    out: dict[str, list[Any]] = {}
    missing: Counter[str] = Counter()
    sentinels = frozenset(plan.sentinels)
    for c in plan.feature_cols:
        numeric = c in plan.numeric_cols
        parsed: list[Any] = []
        for i, raw in enumerate(chunk.columns[c]):
            try:
                value = cell(raw, c, numeric=numeric, sentinels=sentinels)
            except RecordError as exc:
                col.problem(i, exc.code, c, str(exc), raw)
                value = None
            else:
                if value is None:
                    missing[c] += 1
            parsed.append(value)
        out[c] = parsed
    return out, [len(plan.feature_cols)] * len(chunk), missing


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


# ---------------------------------------------------------------------------------------------
# Running chunks: in this process, or over a process pool with results in file order.


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pool_context() -> Any:
    """fork where available: a spawned child re-runs the caller's main module, which crashes the pool
    when a script lacks an `if __name__ == "__main__"` guard. The forked child only runs RDKit and
    numpy on pickled chunks, never the parent's pyarrow or Celery threads, so what those threads held
    at fork time does not matter to it."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _map_chunks(plan: _Plan, chunks: Iterator[Chunk], options: ValidationOptions,
                notes: list[str]) -> Iterator[_ChunkResult]:
    """Chunk results in file order: in this process, or from a pool of worker processes (SMILES)."""
    workers = options.workers if options.workers is not None else _cpu_count()
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None) if plan.modality == "smiles" and workers > 1 else None
    if second is None:  # one chunk, or work too light to pay for processes: stay in this process
        yield validate_chunk(plan, first, max_problems=options.max_problems)
        for chunk in chunks:
            yield validate_chunk(plan, chunk, max_problems=options.max_problems)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pending: deque[tuple[Any, Chunk]] = deque()
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_worker_init,
                                   initargs=(plan, options.max_problems))
        pending.append((pool.submit(_worker_chunk, first), first))
        pending.append((pool.submit(_worker_chunk, second), second))
    except (OSError, AssertionError, ValueError, BrokenProcessPool) as exc:  # e.g. a daemonic process
        notes.append(f"validated in one process: worker pool unavailable ({exc})")
        yield validate_chunk(plan, first, max_problems=options.max_problems)
        yield validate_chunk(plan, second, max_problems=options.max_problems)
        for chunk in chunks:
            yield validate_chunk(plan, chunk, max_problems=options.max_problems)
        return
    # Bounded read-ahead: a few chunks per worker in flight, so memory does not grow with the file
    # while the workers never wait for the reader.
    in_flight = 2 * workers + 2
    broken = False
    try:
        for chunk in chunks:
            if broken:
                pending.append((None, chunk))
            else:
                try:
                    pending.append((pool.submit(_worker_chunk, chunk), chunk))
                except BrokenProcessPool:
                    broken = True
                    pending.append((None, chunk))
            while len(pending) >= in_flight:
                yield _result(pending.popleft(), plan, options, notes)
        while pending:
            yield _result(pending.popleft(), plan, options, notes)
    finally:
        for fut, _ in pending:
            if fut is not None:
                fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _result(item: tuple[Any, Chunk], plan: _Plan, options: ValidationOptions, notes: list[str]) -> _ChunkResult:
    """A submitted chunk's result; if its worker died (killed, out of memory), the chunk is validated
    here instead, so a lost process costs time, never records."""
    from concurrent.futures.process import BrokenProcessPool

    future, chunk = item
    if future is not None:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            if not any(n.startswith("worker pool broke") for n in notes):
                notes.append(f"worker pool broke ({exc}); the remaining chunks were validated in one process")
    return validate_chunk(plan, chunk, max_problems=options.max_problems)


# ---------------------------------------------------------------------------------------------
# Aggregation over the whole file: counts, stats, duplicates, the canonical copy.


class _Moments:
    """Streaming count / mean / M2 / min / max (Chan et al.'s pairwise merge) plus a reservoir."""

    def __init__(self, seed: int, reservoir: int = _RESERVOIR) -> None:
        self.reservoir = reservoir
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.missing = 0
        self.sample = np.empty(0, dtype=np.float64)
        self.rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        m = len(present)
        if not m:
            return
        mean_b = float(present.mean())
        m2_b = float(((present - mean_b) ** 2).sum())
        delta = mean_b - self.mean
        total = self.n + m
        self.mean += delta * m / total
        self.m2 += m2_b + delta**2 * self.n * m / total
        self.min = min(self.min, float(present.min()))
        self.max = max(self.max, float(present.max()))
        # Reservoir sampling (Vitter's algorithm R), vectorized per chunk: quantiles and histogram
        # from a uniform sample of at most _RESERVOIR values, exact below that.
        room = self.reservoir - len(self.sample)
        if room > 0:
            self.sample = np.concatenate([self.sample, present[:room]])
        rest = present[max(room, 0):]
        if len(rest):
            seen = self.n + max(room, 0) + np.arange(1, len(rest) + 1)
            take = self.rng.random(len(rest)) < self.reservoir / seen
            slots = self.rng.integers(0, self.reservoir, int(take.sum()))
            self.sample[slots] = rest[take]
        self.n = total

    def summary(self) -> dict[str, Any]:
        if not self.n:
            return {"count": 0, "missing": self.missing}
        qs = np.quantile(self.sample, [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
        counts, edges = np.histogram(self.sample, bins=20)
        return {
            "count": self.n, "missing": self.missing, "mean": self.mean,
            "std": math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0,
            "min": self.min, "max": self.max,
            "quantiles": {k: float(v) for k, v in zip(("p1", "p5", "p25", "p50", "p75", "p95", "p99"), qs)},
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
            "approximate": self.n > len(self.sample),  # quantiles / histogram from a uniform sample
        }


class _Categories:
    """Streaming counts of a categorical column's values, bounded: past `limit` distinct values new
    ones are no longer told apart (the summary says the count is a lower bound)."""

    def __init__(self, limit: int = _MAX_CATEGORIES) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()
        self.missing = 0
        self.untracked = 0
        self.capped = False

    def add(self, values: list[Any]) -> None:
        for value in values:
            if value is None:
                self.missing += 1
            elif value in self.counts or len(self.counts) < self.limit:
                self.counts[value] += 1
            else:
                self.capped = True
                self.untracked += 1

    def summary(self) -> dict[str, Any]:
        return {"count": sum(self.counts.values()) + self.untracked, "missing": self.missing,
                "distinct": len(self.counts), "distinct_at_least": self.capped,
                "top": [[value_text(v), n] for v, n in self.counts.most_common(_TOP_CATEGORIES)]}


def _feature_summary(kind: str, stats: _Moments | _Categories) -> dict[str, Any]:
    """One tabular feature: its type, missing share, range or top values, and distribution."""
    summary = {"type": kind, **stats.summary()}
    total = summary["count"] + summary["missing"]
    summary["missing_share"] = summary["missing"] / total if total else 0.0
    return summary


def _extra_tokens(modality: str) -> int:
    """Tokens a job adds beside the record's own by default: the [FP] token of the molecule tasks
    (catalog `fingerprint`, on by default), which counts against max_len at training."""
    return 1 if modality == "smiles" and catalog.HYPERPARAMETERS["fingerprint"].default else 0


def _length_summary(counts: Counter[int], unit: str, default_max_len: int, extra_tokens: int = 0) -> dict[str, Any]:
    total = sum(counts.values())
    if not total:
        return {"unit": unit, "count": 0}
    values = np.asarray(sorted(counts), dtype=np.float64)
    weights = np.asarray([counts[int(v)] for v in values], dtype=np.float64)
    cum = np.cumsum(weights)

    def q(p: float) -> int:
        return int(values[np.searchsorted(cum, p * total, side="left")])

    hist_counts, edges = np.histogram(values, bins=min(20, len(values)), weights=weights)
    return {
        "unit": unit, "count": total, "min": int(values[0]), "max": int(values[-1]),
        "mean": float((values * weights).sum() / total),
        "quantiles": {"p5": q(0.05), "p25": q(0.25), "p50": q(0.5), "p75": q(0.75), "p95": q(0.95)},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in hist_counts]},
        "over_default_max_len": int(weights[values + extra_tokens > default_max_len].sum()),
        "default_max_len": default_max_len,
        "extra_tokens": extra_tokens,
    }


def _arrow_schema(plan: _Plan, first: _ChunkResult) -> Any:
    """The canonical copy's schema, fixed up front so every chunk is written with the same types."""
    import pyarrow as pa

    fields = [pa.field(SOURCE_LINE_COL, pa.int64())]
    for name in first.out:
        if name == SOURCE_LINE_COL:
            continue
        if name in plan.target_cols and plan.target_kind is not None and kind_get(plan.target_kind).numeric_targets:
            fields.append(pa.field(name, pa.float64()))
        elif plan.input_kind in ("long", "lists") and name in plan.element_cols:
            fields.append(pa.field(name, pa.list_(pa.string() if name == "band" else pa.float64())))
        elif plan.input_kind == "table" and name in plan.numeric_cols:
            fields.append(pa.field(name, pa.float64()))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


class _Duplicates:
    """Duplicate records by canonical-input hash, spilled to bucket files so memory stays flat."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="labformer-dups-")
        self.files = [open(os.path.join(self.dir, f"{b:02d}.bin"), "wb") for b in range(_N_BUCKETS)]
        self.dtype = np.dtype([("key", "<u8"), ("line", "<i8"), ("target", "<u8")])

    def add(self, keys: np.ndarray, lines: list[int], target_keys: np.ndarray) -> None:
        rec = np.empty(len(keys), dtype=self.dtype)
        rec["key"], rec["line"], rec["target"] = keys, lines, target_keys
        bucket = (keys >> np.uint64(60)).astype(np.int64)  # top 4 bits pick the bucket
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(_N_BUCKETS + 1))
        for b in range(_N_BUCKETS):
            if bounds[b + 1] > bounds[b]:
                rec[order[bounds[b]:bounds[b + 1]]].tofile(self.files[b])

    def finish(self, limit: int) -> dict[str, Any]:
        """Counts plus the first `limit` duplicate groups in file order, with conflicting targets flagged."""
        for f in self.files:
            f.close()
        records = groups = conflicts = 0
        examples: list[tuple[int, list[int], bool]] = []
        try:
            for b in range(_N_BUCKETS):
                rec = np.fromfile(os.path.join(self.dir, f"{b:02d}.bin"), dtype=self.dtype)
                if len(rec) < 2:
                    continue
                rec = rec[np.lexsort((rec["line"], rec["key"]))]
                starts = np.flatnonzero(np.r_[True, rec["key"][1:] != rec["key"][:-1]])
                sizes = np.diff(np.r_[starts, len(rec)])
                dup = np.flatnonzero(sizes > 1)
                records += int((sizes[dup] - 1).sum())
                groups += len(dup)
                found = []
                for g in dup:
                    part = rec[starts[g]:starts[g] + sizes[g]]
                    conflict = bool((part["target"] != part["target"][0]).any())
                    conflicts += conflict
                    found.append((int(part["line"][0]), part["line"][:20].tolist(), conflict))
                examples = heapq.nsmallest(limit, examples + found)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return {"records": records, "groups": groups, "conflicting_groups": conflicts,
                "examples": [{"lines": lines, "conflicting_targets": c} for _, lines, c in examples]}


class _Aggregator:
    def __init__(self, plan: _Plan, options: ValidationOptions, policy: str, output: Path | None,
                 reader: Reader) -> None:
        self.plan, self.options, self.policy, self.output = plan, options, policy, output
        self.origin = {SOURCE_NAME_KEY: reader.source.encode(), SOURCE_UNIT_KEY: reader.unit.encode()}
        self.rows = self.valid = self.invalid = 0
        self.problems: list[Problem] = []
        self.totals: Counter[str] = Counter()
        self.warnings: Counter[str] = Counter()
        self.examples: dict[str, list[tuple[int, str]]] = {}
        self.lengths: Counter[int] = Counter()
        self.moments = {c: _Moments(seed=k) for k, c in enumerate(plan.target_cols)}
        # Tabular: one summary per feature over the valid records (the dataset page shows them).
        self.features: dict[str, _Moments | _Categories] = {
            c: _Moments(seed=1000 + k, reservoir=_FEATURE_RESERVOIR) if c in plan.numeric_cols else _Categories()
            for k, c in enumerate(plan.feature_cols)
        } if plan.input_kind == "table" else {}
        self.classes: Counter[str] = Counter()
        self.class_lines: dict[str, list[int]] = {}
        self.too_many_classes = False
        self.label_chars: Counter[str] = Counter()
        self.missing: Counter[str] = Counter()
        self.split_counts: Counter[str] = Counter()  # train / val / test records of the split column
        self.dups = _Duplicates() if plan.duplicates and plan.input_kind in ("sequence", "molblock") else None
        self.writer: Any = None
        self.partial = output.with_name(output.name + ".partial") if output is not None else None

    def add(self, res: _ChunkResult) -> None:
        self.rows += res.n
        self.invalid += res.n_invalid
        self.valid += res.n - res.n_invalid
        self.totals.update(res.totals)
        room = self.options.max_problems - len(self.problems)
        if room > 0:
            self.problems += [Problem(*p) for p in sorted(res.problems, key=lambda p: p[0] or 0)[:room]]
        self.warnings.update(res.warnings)
        for code, line, message in res.warning_examples:
            ex = self.examples.setdefault(code, [])
            if len(ex) < _WARNING_EXAMPLES:
                ex.append((line, message))
        lengths = np.bincount(res.lengths) if len(res.lengths) else np.zeros(0, dtype=np.int64)
        for value in np.flatnonzero(lengths):
            self.lengths[int(value)] += int(lengths[value])
        if res.numbers is not None:
            for k, c in enumerate(self.plan.target_cols):
                self.moments[c].add(res.numbers[:, k])
        if res.labels is not None:
            for label, count in Counter(res.labels).items():
                if label not in self.classes and len(self.classes) > self.options.max_classes:
                    self.too_many_classes = True  # stop tracking: the report says why
                    continue
                self.classes[label] += count
            for label, line in zip(res.labels, res.out[SOURCE_LINE_COL]):
                kept = self.class_lines.setdefault(label, []) if not self.too_many_classes else \
                    self.class_lines.get(label)
                if kept is not None and len(kept) < self.options.min_per_class:
                    kept.append(line)
        if res.label_chars is not None:
            self.label_chars.update(res.label_chars)
        if res.missing:
            self.missing.update(res.missing)
        if self.plan.split_col:
            self.split_counts.update(res.out.get(self.plan.split_col, []))
        for c, summary in self.features.items():
            values = res.out.get(c, [])
            if isinstance(summary, _Moments):
                summary.add(np.asarray([np.nan if v is None else v for v in values], dtype=np.float64))
            else:
                summary.add(values)
        if self.dups is not None and res.keys is not None and len(res.keys):
            self.dups.add(res.keys, res.out[SOURCE_LINE_COL], res.target_keys)  # type: ignore[arg-type]
        if self.partial is not None and res.out[SOURCE_LINE_COL]:
            self._write(res)

    def _write(self, res: _ChunkResult) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = _arrow_schema(self.plan, res).with_metadata(self.origin)
            self.partial.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            self.writer = pq.ParquetWriter(str(self.partial), self.schema, compression="zstd")
        self.writer.write_table(pa.Table.from_pydict(res.out, schema=self.schema))

    def finish(self, reader: Reader, task: str | None, notes: list[str]) -> ValidationResult:
        plan, options = self.plan, self.options
        dataset_problems: list[Problem] = []
        drop_lines: set[int] = set()
        stats: dict[str, Any] = {"length": _length_summary(self.lengths, view_get(plan.modality).length_unit,
                                                           plan.default_max_len, _extra_tokens(plan.modality))}
        if plan.target_kind is not None:
            target = kind_get(plan.target_kind).validation_stats(self, plan, options, dataset_problems, drop_lines)
            if target is not None:
                stats["target"] = target
        if self.missing:
            stats["missing"] = dict(self.missing)
        if self.features:
            stats["features"] = {c: _feature_summary("numeric" if isinstance(f, _Moments) else "categorical", f)
                                 for c, f in self.features.items()}

        valid, invalid = self.valid, self.invalid
        if self.policy == "skip" and drop_lines:
            valid -= len(drop_lines)
            invalid += len(drop_lines)
        if valid < max(1, options.min_valid if self.policy == "skip" else 1):
            dataset_problems.append(Problem(None, None, "too_few_valid",
                                            f"{valid} valid record(s), at least {max(1, options.min_valid)} needed"))
        if self.policy == "skip" and self.rows and invalid / self.rows > options.max_invalid_fraction:
            dataset_problems.append(Problem(None, None, "too_many_invalid",
                                            f"{invalid} of {self.rows} records are invalid, more than "
                                            f"{options.max_invalid_fraction:.0%}: check the column mapping "
                                            "and the file"))
        for p in dataset_problems:
            self.totals[p.code] += 1
        problems = self.problems + dataset_problems[: max(0, options.max_problems - len(self.problems))]
        problems.sort(key=lambda p: (p.line is None, p.line or 0))

        if self.policy == "strict":
            status = "valid" if not self.totals else "invalid"
        else:
            fatal = {"too_few_valid", "too_few_classes", "too_many_classes", "too_many_invalid"}
            status = "invalid" if any(p.code in fatal for p in dataset_problems) else "valid"

        warnings = [{"code": code, "count": count,
                     "examples": [{"line": line, "message": m} for line, m in self.examples.get(code, [])]}
                    for code, count in self.warnings.items()]
        if self.dups is not None:
            dup = self.dups.finish(limit=100)
            stats["duplicates"] = dup
            if dup["records"]:
                warnings.append({"code": "duplicate", "count": dup["records"],
                                 "message": f"{dup['records']} record(s) repeat an earlier one after "
                                            f"canonicalization ({dup['groups']} group(s))",
                                 "examples": [{"lines": g["lines"]} for g in dup["examples"][:_WARNING_EXAMPLES]]})
            if dup["conflicting_groups"]:
                warnings.append({"code": "duplicate_conflict", "count": dup["conflicting_groups"],
                                 "message": f"{dup['conflicting_groups']} group(s) of duplicates disagree on "
                                            "the target",
                                 "examples": [{"lines": g["lines"]} for g in dup["examples"]
                                              if g["conflicting_targets"]][:_WARNING_EXAMPLES]})
        if stats["length"].get("over_default_max_len"):
            n = stats["length"]["over_default_max_len"]
            fp = " counting the [FP] token molecule tasks add" if stats["length"]["extra_tokens"] else ""
            warnings.append({"code": "over_default_max_len", "count": n,
                             "message": f"{n} valid record(s) are longer than the default max_len "
                                        f"{plan.default_max_len}{fp}; train with a larger max_len or they are "
                                        "rejected"})
        if plan.split_col:
            stats["split"] = {part: self.split_counts.get(part, 0) for part in ("train", "val", "test")}
            if self.split_counts and not self.split_counts.get("val"):
                warnings.append({"code": "no_validation_rows", "count": 1,
                                 "message": f"the split column {plan.split_col!r} has no validation rows: training "
                                            "holds out val_frac of the train rows as validation (seeded, "
                                            "stratified by class) and says so in its metrics"})
        for note in notes:
            warnings.append({"code": "note", "count": 1, "message": note})

        output = None
        if self.writer is not None:
            self.writer.close()
        if self.partial is not None and self.output is not None:
            if status == "valid" and self.writer is not None:
                if drop_lines:
                    _drop_rows(self.partial, drop_lines)
                os.replace(self.partial, self.output)
                output = str(self.output)
            elif self.partial.exists():
                self.partial.unlink()  # an invalid dataset leaves no canonical copy to be trained on
        input_cols = ["smiles"] if plan.input_kind == "molblock" else [plan.input_col] if plan.input_col \
            else list(plan.feature_cols)
        # The mapping resolved against the file, as the canonical copy names its columns (the recipe
        # reads the copy with it), under ColumnMapping's keys; the report's older keys (input, targets,
        # id, group, split) stay beside them for the readers of older reports.
        resolved = ColumnMapping(input_cols=input_cols, target_cols=plan.target_cols, id_col=plan.id_col,
                                 group_col=plan.group_col, split_col=plan.split_col)
        columns = {**resolved.to_dict(),
                   "input": input_cols[0] if plan.input_col or plan.input_kind == "molblock" else input_cols,
                   "targets": list(plan.target_cols),
                   "id": plan.id_col, "group": plan.group_col, "split": plan.split_col,
                   "line": SOURCE_LINE_COL,
                   # every column of the file, mapped or not: what a corrected mapping could choose from
                   "file": list(reader.columns)}
        if plan.input_kind in ("long", "lists"):
            columns["elements"] = list(plan.element_cols)
        if plan.input_kind == "table":
            columns["numeric"] = sorted(plan.numeric_cols)
        return ValidationResult(
            source=reader.source, format=reader.format, unit=reader.unit, modality=plan.modality, task=task,
            policy=self.policy, rows=self.rows, valid=valid, invalid=invalid, problems=problems,
            totals=dict(self.totals.most_common()), warnings=warnings, stats=stats, status=status,
            output=output, columns=columns,
        )

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.partial is not None and self.partial.exists():
            self.partial.unlink()
        if self.dups is not None:
            for f in self.dups.files:
                f.close()
            shutil.rmtree(self.dups.dir, ignore_errors=True)


def _drop_rows(path: Path, lines: set[int]) -> None:
    """Rewrite a Parquet file without the rows whose source line is in `lines`, batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".filtered")
    pfile = pq.ParquetFile(path)
    drop = pa.array(sorted(lines), type=pa.int64())
    with pq.ParquetWriter(str(tmp), pfile.schema_arrow, compression="zstd") as writer:
        for batch in pfile.iter_batches(batch_size=65536):
            keep = pc.invert(pc.is_in(batch.column(SOURCE_LINE_COL), value_set=drop))
            writer.write_table(pa.Table.from_batches([batch.filter(keep)], schema=pfile.schema_arrow))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The entry point


def validate_file(
    path: str | Path,
    *,
    modality: str | None = None,
    task: str | None = None,
    mapping: ColumnMapping | None = None,
    policy: str = "strict",
    options: ValidationOptions | None = None,
    output: str | Path | None = None,
) -> ValidationResult:
    """Validate every record of `path` and, when `output` is given and the result is valid, write the
    canonical Parquet copy there (written to `<output>.partial` while streaming, renamed at the end).

    Give `task` (targets are then checked too) or `modality` (or both, if they agree). Raises
    `ReadError` when the file cannot be read at all (missing, binary, wrong format, a mapped column
    absent) and ValueError for bad arguments; every problem with records is in the result instead.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    task_obj = catalog.task_get(task) if task else None
    if task_obj is not None and modality and modality != task_obj.modality:
        raise ValueError(f"task {task!r} takes {task_obj.modality} records, not {modality}")
    modality = modality or (task_obj.modality if task_obj else None)
    if not modality:
        raise ValueError("give a task or a modality")
    catalog.modality_get(modality)
    options = options or ValidationOptions()
    mapping = mapping or ColumnMapping()
    started = time.monotonic()
    reader = reader_open(path, fmt=options.format, chunk_size=options.chunk_size, delimiter=options.delimiter,
                         side_labels=options.side_labels, limits=options.limits())
    plan = _plan_build(reader, modality, task_obj, mapping, options)
    both = [c for c in plan.target_cols if c in (plan.input_col, plan.id_col, plan.group_col, plan.split_col)]
    if both:  # a default can meet a mapped name here (ColumnMapping refuses the explicit ones)
        raise ReadError(reader.source, f"column {both[0]!r} is the target and also the input, id, group or split "
                                       "column; map another target with --target-col")
    chunks: Iterator[Chunk] = reader.chunks(plan.read_cols)
    if plan.input_kind == "long":
        chunks = group_long(chunks, id_col=plan.input_col, element_cols=plan.element_cols,
                            record_cols=plan.record_cols, max_elements=plan.max_len, chunk_size=options.chunk_size)
    if plan.input_kind == "table" and options.numeric_cols is None:
        first = next(chunks, None)
        if first is not None:
            plan = _replace(plan, numeric_cols=_infer_numeric(plan, first))
            chunks = _prepend(first, chunks)
    notes: list[str] = []
    agg = _Aggregator(plan, options, policy, Path(output) if output is not None else None, reader)
    try:
        for result in _map_chunks(plan, chunks, options, notes):
            agg.add(result)
            if options.max_seconds is not None and time.monotonic() - started > options.max_seconds:
                raise ReadError(reader.source, f"validation stopped after {options.max_seconds:g} s (the time limit) "
                                f"at {agg.rows:,} records; split the file into smaller ones")
    except BaseException:
        agg.abort()
        raise
    return agg.finish(reader, task, notes)


def _replace(plan: _Plan, **changes: Any) -> _Plan:
    import dataclasses

    return dataclasses.replace(plan, **changes)


def _prepend(first: Chunk, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    yield first
    yield from rest
