"""The `Kind` base class: the contract every target kind implements (see the package docstring).

`enc` below is a `mlcore.data.TargetEncoder`: the fitted state of one run's targets (`kind`,
`target_cols`, `classes`, `mean`, `std`); it is saved with a model and hands every call to its kind.
Methods that need torch import it themselves, so that this module and every kind module stay
importable in torch-free processes (validation, prediction-file writing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore import catalog

IGNORE_INDEX = -100  # token positions without a label, as the token head expects


def to_float(value: Any) -> float | None:
    """A number as a float; None when it is not one (the label-encoding parse, not validation's)."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def stack_rows(values: Sequence[Any]) -> np.ndarray:
    """Per-example arrays -> (N, K) float64, each flattened."""
    if not len(values):
        return np.zeros((0, 0), dtype=np.float64)
    return np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])


class Kind:
    """One target kind. Subclasses set `key` and override what differs from these defaults."""

    key: str = ""
    token_level: bool = False  # the head reads per-token states, not the pooled one
    numeric_targets: bool = False  # target columns are numbers (float64 in validation's Parquet copy)

    @property
    def meta(self) -> catalog.TargetKind:
        """The torch-free metadata of this kind (`mlcore.catalog.TARGET_KINDS[key]`)."""
        return catalog.TARGET_KINDS[self.key]

    # ------------------------------------------------------------------ resolution and encoding

    def for_columns(self, target_cols: Sequence[str]) -> str:
        """The kind to check raw targets with before their values are known (column count only)."""
        return catalog.kind_resolve(self.key, n_targets=len(target_cols)) if self.meta.resolve_by == "columns" \
            else self.key

    def resolve(self, target_cols: Sequence[str], values: Sequence[Any]) -> str:
        """The kind a task declared as this one runs as on these training targets."""
        return self.for_columns(target_cols)

    def fit(self, enc: Any, values: Sequence[Any]) -> None:
        """Fit `enc`'s state (classes, mean / std) on the training split's raw targets."""

    def n_outputs(self, enc: Any) -> int:
        return len(enc.target_cols)

    def check(self, enc: Any, value: Any, n_tokens: int | None = None) -> None:
        """Raise ValueError with the reason when `value` is not a valid raw target."""
        if value is None or (isinstance(value, str) and value == ""):
            raise ValueError("missing target")

    def encode(self, enc: Any, value: Any) -> Any:
        """Raw target -> the label the head trains on."""
        raise NotImplementedError

    def metric_inputs(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        """Per-example logits and encoded labels -> (y_true, y_score) for `metrics`, in target units."""
        raise NotImplementedError

    def true_labels(self, enc: Any, records: Sequence[Any], encoded: Sequence[Any]) -> list[Any]:
        """The true targets of records in the user's terms (for the embedding explorer)."""
        return [r.target for r in records]

    def split_labels(self, values: Sequence[Any]) -> list[Any] | None:
        """Raw training targets to stratify a split by; None: this kind does not stratify."""
        return None

    def stratify(self, encoded: Sequence[Any]) -> list[int] | None:
        """Encoded labels as class ids for stratified cross-validation folds; None: not stratified."""
        return None

    def class_weights(self, encoded: Sequence[Any], n_outputs: int) -> Any:
        """Balanced class weights for the loss (`class_weights` hyperparameter); None: not applicable."""
        return None

    # ------------------------------------------------------------------ model

    def head(self, d_model: int, n_outputs: int, dropout: float, class_weights: Any = None) -> Any:
        """The output head (a torch module) for this kind."""
        raise NotImplementedError

    def collate_labels(self, labels: list[Any]) -> Any:
        """Per-example encoded labels -> the batch's `labels` tensor."""
        import torch

        return torch.as_tensor(np.stack(labels), dtype=torch.float32)

    def distill_loss(self, student: Any, teacher: Any, labels: Any, temperature: float) -> Any:
        """The soft-target loss between student and teacher logits (the distilled profile)."""
        import torch.nn.functional as F

        T = temperature
        return F.kl_div(F.log_softmax(student / T, dim=-1), F.log_softmax(teacher / T, dim=-1),
                        reduction="batchmean", log_target=True) * T * T

    # ------------------------------------------------------------------ metrics and outputs

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        """Every metric of this kind (`catalog.TargetKind.metrics` and per-target extras)."""
        raise NotImplementedError

    def decode(self, enc: Any, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Model outputs -> one dict per record: `prediction`, plus `probabilities` when it has them."""
        raise NotImplementedError

    def prediction_header(self, enc: Any) -> list[str]:
        """Prediction-file columns after the id and position columns."""
        return ["prediction"]

    def prediction_cells(self, enc: Any, prediction: dict[str, Any]) -> list[Any]:
        """One decoded prediction as the cells under `prediction_header`."""
        return [prediction["prediction"]]

    def evaluation_arrays(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
        """Per-record test arrays the evaluation dashboard draws (see `catalog.TargetKind.evaluation_plots`)."""
        raise NotImplementedError

    def evaluation_meta(self, enc: Any) -> dict[str, Any]:
        """What a reader of the evaluation arrays needs besides them: class names or target columns."""
        return {"target_cols": list(enc.target_cols)}

    # ------------------------------------------------------------------ dataset validation

    # The kind written into a validation report's target statistics (`stats["target"]["kind"]`).
    stats_kind: str = ""

    def validation_kind(self, target_cols: Sequence[str]) -> str:
        """The kind that checks a dataset's targets for a task declared as this kind."""
        return self.for_columns(target_cols)

    def validation_parse(self, plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int]) -> dict[str, list[Any]]:
        """Parse and check one chunk's target columns; `col.problem(i, code, column, reason, value)`
        marks a record invalid. Returns the parsed target columns (floats or label strings)."""
        raise NotImplementedError

    def validation_summary(self, result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
        """Attach what the statistics need from one chunk's valid records to `result` (`numbers`,
        `labels` or `label_chars`)."""

    def validation_stats(self, acc: Any, plan: Any, options: Any, problems: list[Any], drop_lines: set[int]) -> dict[str, Any] | None:
        """The report's `stats["target"]` from the accumulated chunks; may append dataset problems and
        lines to drop."""
        return None

    # ------------------------------------------------------------------ helpers for subclasses

    @staticmethod
    def _numbers(value: Any) -> list[float]:
        values = value if isinstance(value, list) else [value]
        out = []
        for v in values:
            number = to_float(v) if v is not None and str(v).strip() != "" else math.nan
            if number is None:
                raise ValueError(f"non-numeric target {v!r}")
            if math.isinf(number):
                raise ValueError(f"infinite target {v!r}")
            out.append(number)
        return out

    def __repr__(self) -> str:
        return f"<Kind {self.key}>"


def label_parse(plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int],
                per_token: bool = False) -> dict[str, list[Any]]:
    """Validation of label targets (one text label per record, or per-token label strings whose
    length must match the record's): the shared part of the class and token kinds."""
    from mlcore.validation import _text

    out: dict[str, list[Any]] = {}
    name = plan.target_cols[0]
    labels: list[Any] = []
    for i, raw in enumerate(chunk.columns[name]):
        label = _text(raw)
        if isinstance(raw, float) and raw.is_integer():
            label = str(int(raw))  # Parquet may store integer labels as doubles: 1.0 and 1 are one class
        labels.append(label)
        if i in unread:
            continue
        if not label:
            col.problem(i, "target_missing", name, "missing label", raw)
        elif per_token and i not in col.bad and len(label) != lengths[i]:
            col.problem(i, "label_length", name,
                        f"{len(label)} per-residue labels for a sequence of {lengths[i]}", raw)
    out[name] = labels
    for c in plan.target_cols[1:]:
        out[c] = [_text(v) for v in chunk.columns[c]]
    return out


def columns_parse(plan: Any, chunk: Any, col: Any, unread: set[int], *, value: Any, noun: str
                  ) -> dict[str, list[Any]]:
    """Validation of several numeric target columns (multi-target values, multi-label 0 / 1), one
    float per cell with NaN for a missing one: the shared part of the regression and multi-label kinds.

    `value(raw)` gives the float (NaN: missing) or an error message for a bad cell; a record whose
    every target is missing is a problem too (missing targets are masked, but one must be present).
    """
    out: dict[str, list[Any]] = {}
    all_missing = [True] * len(chunk)
    for name in plan.target_cols:
        parsed: list[float] = []
        for i, raw in enumerate(chunk.columns[name]):
            number = value(raw)
            if i in unread:
                number = math.nan
            elif isinstance(number, tuple):  # (code, message): a bad cell
                col.problem(i, number[0], name, number[1], raw)
                number = math.nan
            elif not math.isnan(number):
                all_missing[i] = False
            parsed.append(number)
        out[name] = parsed
    for i, missing in enumerate(all_missing):
        if missing and i not in col.bad and i not in unread:
            cols = plan.target_cols
            reason = f"missing {noun}" if len(cols) == 1 else f"every {noun} ({', '.join(cols)}) is missing"
            col.problem(i, "target_missing", cols[0], reason, chunk.columns[cols[0]][i])
    return out


def columns_summary(result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
    """The validated numeric targets as one (N, K) array on the chunk's result; Parquet nulls, not
    NaN, mark the missing ones in the canonical copy."""
    n = len(out[plan.target_cols[0]]) if plan.target_cols else 0
    result.numbers = np.asarray([[out[c][j] for c in plan.target_cols] for j in range(n)],
                                dtype=np.float64).reshape(n, len(plan.target_cols))
    for c in plan.target_cols:
        out[c] = [None if v is None or math.isnan(v) else v for v in out[c]]
