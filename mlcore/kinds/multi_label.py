"""Multi-label classification: several binary labels per record, one target column each (a panel of
assays per molecule, function terms per protein). A label cell is 1 / 0 (also true / false, yes / no,
1.0 / 0.0); an empty cell is a missing label, left out of the loss and the metrics. A record needs at
least one known label.

- head: one logit per label on the pooled features; loss: binary cross-entropy over the known labels;
- metrics: ROC-AUC and PR-AUC per label (`roc_auc_t0`, `pr_auc_t0`, ... in target-column order), their
  means over the labels where defined (`macro_roc_auc`, the primary metric, and `macro_pr_auc`), the
  ROC-AUC of every known (record, label) pair pooled (`micro_roc_auc`) and the share of known labels
  right at probability 0.5 (`label_accuracy`);
- predictions: `prediction` = the labels predicted present, joined by ";" ("(none)" when none), and a
  probability per label (`prob_<label>` columns in prediction files);
- evaluation arrays: `y_true` (N, K) 1 / 0 / NaN, `proba` (N, K), `y_pred` (N, K) at 0.5: the
  evaluation page draws a ROC and a precision-recall curve per label and a calibration curve;
- distillation: the Bernoulli KL divergence of each label between teacher and student at temperature T.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.kinds import kind_register
from mlcore.kinds.base import Kind, columns_parse, columns_summary, stack_rows

NONE = "(none)"  # the prediction of a record with no label predicted present
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


def label_value(value: Any) -> float | None:
    """1.0 / 0.0 for a present / absent label, NaN for a missing one, None when it is neither."""
    from mlcore.catalog import MISSING_STRINGS

    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
        if math.isnan(number):
            return math.nan
        return number if number in (0.0, 1.0) else None
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1.0
    if text in _FALSE:
        return 0.0
    if text in MISSING_STRINGS:
        return math.nan
    return None


def masked_bce(logits: Any, labels: Any) -> Any:
    """Binary cross-entropy with logits, averaged over the known (non-NaN) labels; 0 (with a graph)
    when a batch has none."""
    import torch
    import torch.nn.functional as F

    target = labels.to(logits.dtype).view_as(logits)
    known = ~torch.isnan(target)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.nan_to_num().float(), reduction="none")
    return torch.where(known, loss, 0.0).sum() / known.sum().clamp(min=1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


@kind_register
class MultiLabelKind(Kind):
    key = "multi_label"
    numeric_targets = True  # 1 / 0 / missing: float columns in validation's Parquet copy
    stats_kind = "multi_label"

    def for_columns(self, target_cols: Sequence[str]) -> str:
        return self.key

    def _values(self, value: Any) -> list[float]:
        values = value if isinstance(value, list) else [value]
        out = []
        for v in values:
            parsed = label_value(v)
            if parsed is None:
                raise ValueError(f"label {v!r} is not 1 / 0 (or true / false, or empty for missing)")
            out.append(parsed)
        return out

    def check(self, enc: Any, value: Any, n_tokens: int | None = None) -> None:
        if all(math.isnan(x) for x in self._values(value)):
            raise ValueError("every label is missing" if len(enc.target_cols) > 1 else "missing label")

    def encode(self, enc: Any, value: Any) -> Any:
        return np.asarray(self._values(value), dtype=np.float32)

    def metric_inputs(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        return stack_rows(labels), stack_rows(logits)

    def _present(self, enc: Any, row: np.ndarray) -> str:
        names = [c for c, y in zip(enc.target_cols, row) if y == 1]
        return ";".join(names) if names else NONE

    def true_labels(self, enc: Any, records: Sequence[Any], encoded: Sequence[Any]) -> list[Any]:
        return [self._present(enc, np.asarray(y).reshape(-1)) for y in encoded]

    def head(self, d_model: int, n_outputs: int, dropout: float, class_weights: Any = None) -> Any:
        from mlcore.model import LossHead

        return LossHead(d_model, n_outputs, masked_bce, dropout=dropout)

    def distill_loss(self, student: Any, teacher: Any, labels: Any, temperature: float) -> Any:
        import torch.nn.functional as F

        T = temperature
        s, t = student / T, teacher / T
        p = t.sigmoid()
        # KL(Bernoulli(p_t) || Bernoulli(p_s)) per label, mean over labels and records.
        kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (F.logsigmoid(-t) - F.logsigmoid(-s))
        return kl.mean() * T * T

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _nanmean, _stack, pr_auc, roc_auc

        y = np.asarray(_stack(y_true), dtype=np.float64)
        s = np.asarray(_stack(y_score), dtype=np.float64)
        if y.ndim == 1:
            y, s = y.reshape(-1, 1), s.reshape(-1, 1)
        proba = _sigmoid(s) if from_logits else s
        out: dict[str, float] = {}
        rocs, prs = [], []
        for k in range(y.shape[1] if y.size else 0):
            known = np.isfinite(y[:, k])
            yk, sk = y[known, k].astype(np.int64), proba[known, k]
            out[f"roc_auc_t{k}"] = roc_auc(yk, sk) if len(yk) else float("nan")
            out[f"pr_auc_t{k}"] = pr_auc(yk, sk) if len(yk) else float("nan")
            rocs.append(out[f"roc_auc_t{k}"])
            prs.append(out[f"pr_auc_t{k}"])
        known = np.isfinite(y)
        yk, pk = y[known].astype(np.int64), proba[known]
        out["macro_roc_auc"] = _nanmean(rocs)
        out["macro_pr_auc"] = _nanmean(prs)
        out["micro_roc_auc"] = roc_auc(yk, pk) if len(yk) else float("nan")
        out["label_accuracy"] = float(((pk >= 0.5) == (yk == 1)).mean()) if len(yk) else float("nan")
        return out

    def decode(self, enc: Any, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        proba = _sigmoid(stack_rows(logits))
        return [{"prediction": self._present(enc, (p >= 0.5).astype(int)),
                 "probabilities": dict(zip(enc.target_cols, p.tolist()))} for p in proba]

    def prediction_header(self, enc: Any) -> list[str]:
        return ["prediction", *(f"prob_{c}" for c in enc.target_cols)]

    def prediction_cells(self, enc: Any, prediction: dict[str, Any]) -> list[Any]:
        return [prediction["prediction"], *(f"{prediction['probabilities'][c]:.6g}" for c in enc.target_cols)]

    def evaluation_arrays(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
        """`y_true` (N, K) 1 / 0 / NaN (missing), `proba` (N, K), `y_pred` (N, K) 1 / 0 at 0.5."""
        k = len(enc.target_cols)
        y = stack_rows(labels).reshape(-1, k)
        proba = _sigmoid(stack_rows(logits)).reshape(-1, k)
        return {"y_true": y.astype(np.float32), "proba": proba.astype(np.float32),
                "y_pred": (proba >= 0.5).astype(np.int64)}

    # ------------------------------------------------------------------ dataset validation

    def validation_kind(self, target_cols: Sequence[str]) -> str:
        return self.key

    def validation_parse(self, plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int]) -> dict[str, list[Any]]:
        from mlcore.validation import value_text

        def value(raw: Any) -> float | tuple[str, str]:
            parsed = label_value(raw)
            if parsed is None:
                return "label_not_binary", f"label {value_text(raw)!r} is not 1 / 0 (true / false; empty = missing)"
            return parsed

        return columns_parse(plan, chunk, col, unread, value=value, noun="label")

    def validation_summary(self, result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
        columns_summary(result, plan, out)

    def validation_stats(self, acc: Any, plan: Any, options: Any, problems: list[Any], drop_lines: set[int]) -> dict[str, Any] | None:
        labels: dict[str, dict[str, int]] = {}
        for c, moments in acc.moments.items():
            summary = moments.summary()
            count = int(summary.get("count") or 0)
            positives = int(round(float(summary.get("mean") or 0.0) * count))
            labels[c] = {"positives": positives, "negatives": count - positives,
                         "missing": int(summary.get("missing") or 0)}
        return {"kind": self.stats_kind, "n_labels": len(labels),
                # records with each label present: the dataset page draws them as the label balance
                "classes": {c: v["positives"] for c, v in labels.items()}, "labels": labels}
