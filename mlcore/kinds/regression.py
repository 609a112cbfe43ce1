"""Regression (one numeric target) and the shared numeric-target behaviour multi-target regression
reuses: standardized targets (mean / std of the training split), a linear head whose squared error
leaves missing (NaN) targets out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.kinds import kind_register
from mlcore.kinds.base import Kind, columns_parse, columns_summary, stack_rows


class NumericKind(Kind):
    """Numeric targets, one or several columns; NaN marks a missing value."""

    numeric_targets = True
    several = False  # several target columns: per-target metrics, missing values allowed

    @property
    def stats_kind(self) -> str:  # type: ignore[override]
        return self.key

    def validation_kind(self, target_cols: Sequence[str]) -> str:
        # Several columns are checked as several targets; one column keeps the declared kind.
        return self.meta.resolution[1] if len(target_cols) > 1 else self.key

    def fit(self, enc: Any, values: Sequence[Any]) -> None:
        arr = np.asarray([self._numbers(v) for v in values], dtype=np.float64)  # (N, K)
        with np.errstate(all="ignore"):
            mean = np.nanmean(arr, axis=0)
            std = np.nanstd(arr, axis=0)
        enc.mean = np.nan_to_num(mean).tolist()
        enc.std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0).tolist()

    def check(self, enc: Any, value: Any, n_tokens: int | None = None) -> None:
        if (value is None or (isinstance(value, str) and value == "")) and not self.several:
            raise ValueError("missing target")
        numbers = self._numbers(value)
        if not self.several and math.isnan(numbers[0]):
            raise ValueError("missing target")
        if all(math.isnan(x) for x in numbers):
            raise ValueError("every target is missing")

    def encode(self, enc: Any, value: Any) -> Any:
        numbers = np.asarray(self._numbers(value), dtype=np.float64)
        return ((numbers - np.asarray(enc.mean)) / np.asarray(enc.std)).astype(np.float32)

    @staticmethod
    def destandardize(enc: Any, outputs: np.ndarray) -> np.ndarray:
        """Standardized outputs (N, K) -> target units."""
        return outputs * np.asarray(enc.std) + np.asarray(enc.mean)

    def metric_inputs(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        y_score = self.destandardize(enc, stack_rows(logits))
        y_true = self.destandardize(enc, stack_rows(labels))
        if not self.several:
            return y_true[:, 0], y_score[:, 0]
        return y_true, y_score

    def head(self, d_model: int, n_outputs: int, dropout: float, class_weights: Any = None) -> Any:
        from mlcore.model import RegressionHead

        return RegressionHead(d_model, n_outputs, dropout=dropout)

    def distill_loss(self, student: Any, teacher: Any, labels: Any, temperature: float) -> Any:
        import torch.nn.functional as F

        return F.mse_loss(student, teacher)

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _regression_metrics, _stack

        return _regression_metrics(np.asarray(_stack(y_true), np.float64).ravel(),
                                   np.asarray(_stack(y_score), np.float64).ravel())

    def decode(self, enc: Any, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        values = self.destandardize(enc, stack_rows(logits))
        if not self.several:
            return [{"prediction": float(row[0])} for row in values]
        return [{"prediction": dict(zip(enc.target_cols, row.tolist()))} for row in values]

    def prediction_header(self, enc: Any) -> list[str]:
        return list(enc.target_cols) if self.several else ["prediction"]

    def prediction_cells(self, enc: Any, prediction: dict[str, Any]) -> list[Any]:
        if self.several:
            return [f"{prediction['prediction'][c]:.6g}" for c in enc.target_cols]
        return [f"{prediction['prediction']:.6g}"]

    def true_labels(self, enc: Any, records: Sequence[Any], encoded: Sequence[Any]) -> list[Any]:
        if self.several:
            return [r.target for r in records]
        return [float(self.destandardize(enc, np.asarray(y, dtype=np.float64).reshape(1, -1))[0, 0]) for y in encoded]

    def evaluation_arrays(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
        """`y_true`, `y_pred` (N, K) in target units (NaN = missing target)."""
        y_true, y_score = self.metric_inputs(enc, logits, labels)
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_score, dtype=np.float64)
        return {"y_true": t.reshape(len(t), -1), "y_pred": p.reshape(len(p), -1)}

    def validation_parse(self, plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int]) -> dict[str, list[Any]]:
        from mlcore.catalog import number_or_missing
        from mlcore.validation import value_text

        def value(raw: Any) -> float | tuple[str, str]:
            number = number_or_missing(raw)
            if number is None:
                return "target_not_numeric", f"target {value_text(raw)!r} is not a number"
            if math.isinf(number):
                return "target_not_finite", f"target {raw!r} is not finite"
            return number

        # Multi-target regression masks missing values out of the loss; one target must be present.
        return columns_parse(plan, chunk, col, unread, value=value, noun="target")

    def validation_summary(self, result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
        columns_summary(result, plan, out)

    def validation_stats(self, acc: Any, plan: Any, options: Any, problems: list[Any], drop_lines: set[int]) -> dict[str, Any] | None:
        return {"kind": self.stats_kind, "columns": {c: m.summary() for c, m in acc.moments.items()}}


@kind_register
class RegressionKind(NumericKind):
    key = "regression"
