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
message (and code) everywhere. The target checks and statistics are the kind's (`mlcore/kinds/`).
This package runs them over the file's chunks and keeps the rest, one module per concern:

- `options.py`: `ValidationOptions`, the policies, the hard length limit;
- `report.py`: `Problem` and `ValidationResult` (the report);
- `plan.py`: the `_Plan` of a run, the column mapping resolved against the file;
- `chunks.py`: one chunk's per-record checks (input, targets, split) and its `_ChunkResult`;
- `streaming.py`: chunks in file order, in this process or over a process pool;
- `statistics.py`: streaming summaries and the `_Aggregator` that makes the report;
- `duplicates.py`: duplicate records by hash, spilled to bucket files;
- `parquet.py`: the canonical copy's schema and the rewrite without dropped rows.

It never imports the featurizers (torch: 2 s and ~200 MB per process). Memory stays flat whatever
the file size: chunks are bounded, duplicates spill to disk, the canonical copy is written chunk by
chunk.

Policies: `strict` (any bad record makes the dataset invalid) and `skip` (bad records are dropped,
counted and listed; the dataset is valid when at least `min_valid` good records remain and the
dataset-level checks hold, e.g. at least 2 examples per class).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlcore import catalog
from mlcore.readers import Chunk, ColumnMapping, ReadError, group_long, reader_open
from mlcore.validation.options import POLICIES, ValidationOptions
from mlcore.validation.plan import _infer_numeric, _Plan, _plan_build
from mlcore.validation.report import ValidationResult
from mlcore.validation.statistics import _Aggregator
from mlcore.validation.streaming import _map_chunks

# Re-exported: the names callers import from `mlcore.validation` (the CLI, the workers, the kinds'
# target checks, the tests), wherever in the package they live now.
from mlcore.readers import SOURCE_LINE_COL, value_text  # noqa: F401
from mlcore.validation.chunks import _check_sequences, _Collector, _ChunkResult, _text, validate_chunk  # noqa: F401
from mlcore.validation.options import HARD_MAX_LEN  # noqa: F401
from mlcore.validation.report import Problem  # noqa: F401


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
