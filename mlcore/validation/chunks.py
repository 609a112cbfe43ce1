"""One chunk: every per-record check. Runs in a worker process (SMILES) or in the main process.

`validate_chunk` runs the modality's rules over the input (`_check_sequences`, `_check_elements`,
`_check_table`), the kind's target checks (`_check_targets`) and the split values, and returns the
canonical columns of the valid records with what the aggregator needs (`_ChunkResult`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcore.catalog import SPLIT_VALUES
from mlcore.kinds import kind_get
from mlcore.modalities import RecordError, RuleOptions, rules_get
from mlcore.readers import SOURCE_LINE_COL, Chunk, value_text
from mlcore.validation.duplicates import _hash64
from mlcore.validation.options import _WARNING_EXAMPLES
from mlcore.validation.plan import _Plan


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
