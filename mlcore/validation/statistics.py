"""Aggregation over the whole file: counts, problems, warnings and statistics, and the report.

Streaming summaries (`_Moments`: count, mean, variance, range and a reservoir for quantiles;
`_Categories`: bounded value counts), the length and feature summaries, and the `_Aggregator` that
adds each chunk's result, feeds the duplicates and the canonical copy, and `finish`es into the
`ValidationResult`.
"""

from __future__ import annotations

import math
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mlcore import catalog
from mlcore.kinds import kind_get
from mlcore.modalities import view_get
from mlcore.readers import SOURCE_LINE_COL, SOURCE_NAME_KEY, SOURCE_UNIT_KEY, ColumnMapping, Reader, value_text
from mlcore.validation.chunks import _ChunkResult
from mlcore.validation.duplicates import _Duplicates
from mlcore.validation.options import _WARNING_EXAMPLES, ValidationOptions
from mlcore.validation.parquet import _arrow_schema, _drop_rows
from mlcore.validation.plan import _Plan
from mlcore.validation.report import Problem, ValidationResult


_RESERVOIR = 100_000  # target values kept for quantiles and histograms (exact below this count)
_FEATURE_RESERVOIR = 10_000  # per tabular feature (a table may have a thousand columns)
_MAX_CATEGORIES = 1000  # distinct values told apart per categorical feature
_TOP_CATEGORIES = 10  # most frequent values listed per categorical feature


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
