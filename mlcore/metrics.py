"""Evaluation metrics for every target kind, in plain numpy.

`compute_metrics(target_kind, y_true, y_score)` is the one entry point: it takes raw model outputs
(logits, not probabilities, unless `from_logits=False`) and returns a flat `dict[str, float]`, so a
result can go straight into metric points, JSON and early stopping. The confusion matrix is not a
float: `confusion_matrix(...)` returns it as a nested list.

Target kinds (as in `mlcore.catalog`):
- `binary`: y_true (N,) in {0, 1}; y_score (N,) or (N, 1) logit of the positive class, or (N, 2)
  class logits.
- `multiclass`: y_true (N,) in 0..C-1; y_score (N, C) logits.
- `regression`: y_true (N,) or (N, 1); y_score the same.
- `multi_regression`: y_true (N, K) with NaN for a missing target; y_score (N, K). Metrics per
  target (`rmse_t0`, ...) and their mean over targets (`rmse`, ...), each over non-missing entries.
- `token_labels`: per-example label arrays (T_i,) with -100 = ignore and logits (T_i, C), as lists
  (ragged) or padded arrays (N, T) / (N, T, C).

Undefined values are NaN, never an exception: ROC-AUC with one class present, a correlation with a
constant side, R² with constant targets. MCC with an undefined denominator is 0, as scikit-learn.
No scikit-learn or scipy at runtime (the tests check every metric against them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore import catalog

TARGET_KINDS = tuple(catalog.TARGET_KINDS)  # every kind `compute_metrics` takes (the catalog's)
IGNORE_INDEX = -100  # token labels equal to this are padding / unlabelled positions

__all__ = [
    "TARGET_KINDS",
    "accuracy",
    "balanced_accuracy",
    "compute_metrics",
    "confusion_matrix",
    "log_loss",
    "macro_f1",
    "mae",
    "mcc",
    "pearson",
    "pr_auc",
    "r2",
    "rankdata",
    "rmse",
    "roc_auc",
    "spearman",
    "token_accuracy",
]


# ----------------------------------------------------------------------------- helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so exp never overflows.
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N with ties given their average rank (scipy's 'average' method)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Start index of each run of equal values, in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


# ----------------------------------------------------------------------------- classification


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> list[list[int]]:
    """Counts [true class][predicted class] as a nested list (JSON-ready)."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if n_classes is None:
        n_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return cm.reshape(n_classes, n_classes).tolist()


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true."""
    cm = np.asarray(confusion_matrix(y_true, y_pred), dtype=np.float64)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean F1 over the classes seen in y_true or y_pred (0 where undefined)."""
    cm = np.asarray(confusion_matrix(y_true, y_pred), dtype=np.float64)
    tp = np.diag(cm)
    true_count, pred_count = cm.sum(axis=1), cm.sum(axis=0)
    seen = (true_count + pred_count) > 0
    if not seen.any():
        return float("nan")
    denom = true_count + pred_count  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1[seen]))


def mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Matthews correlation (multiclass form, Gorodkin 2004); 0 when undefined, as scikit-learn."""
    cm = np.asarray(confusion_matrix(y_true, y_pred), dtype=np.float64)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    c, s = np.trace(cm), cm.sum()
    cov_tp = c * s - t @ p
    cov_pp = s * s - p @ p
    cov_tt = s * s - t @ t
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_pp * cov_tt))


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC via the Mann-Whitney statistic (ties count 1/2); NaN with one class only."""
    y = np.asarray(y_true).ravel().astype(bool)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def pr_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision: sum over distinct thresholds of (R_n - R_{n-1}) * P_n; NaN with no positive."""
    y = np.asarray(y_true).ravel().astype(bool)
    score = np.asarray(score, dtype=np.float64).ravel()
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    y_sorted, s_sorted = y[order], score[order]
    # The last index of each run of equal scores is a threshold: tied scores enter together.
    last = np.r_[np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), len(y) - 1]
    tps = np.cumsum(y_sorted)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y_true: np.ndarray, log_proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class, from log-probabilities (N, C)."""
    y = np.asarray(y_true, dtype=np.int64).ravel()
    # Clip as scikit-learn does (probabilities to [eps, 1 - eps]) so a confident miss stays finite.
    eps = np.finfo(np.float64).eps
    p = np.clip(np.exp(log_proba[np.arange(len(y)), y]), eps, 1 - eps)
    return float(-np.mean(np.log(p)))


def _binary_metrics(y: np.ndarray, score: np.ndarray, from_logits: bool) -> dict[str, float]:
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if score.ndim == 2 and score.shape[1] == 2:
        # Two class logits: the positive-class log-odds is their difference.
        score = score[:, 1] - score[:, 0] if from_logits else score[:, 1]
    score = score.reshape(len(y))
    if from_logits:
        prob = _sigmoid(score)
        # log(sigmoid(x)) = -log(1 + e^-x), computed stably for confident logits.
        log_proba = np.stack([-np.logaddexp(0.0, score), -np.logaddexp(0.0, -score)], axis=1)
    else:
        prob = score
        log_proba = np.log(np.clip(np.stack([1 - prob, prob], axis=1), 1e-300, 1.0))
    pred = (prob >= 0.5).astype(np.int64)
    return {
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "f1": _binary_f1(y, pred),
        "macro_f1": macro_f1(y, pred),
        "mcc": mcc(y, pred),
        # Ranked on the raw score: sigmoid saturates to 1.0 and would invent ties.
        "roc_auc": roc_auc(y, score),
        "pr_auc": pr_auc(y, score),
        "log_loss": log_loss(y, log_proba),
    }


def _binary_f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum((y == 1) & (pred == 1)))
    denom = float(np.sum(y == 1) + np.sum(pred == 1))
    return 2 * tp / denom if denom > 0 else 0.0


def _multiclass_metrics(y: np.ndarray, score: np.ndarray, from_logits: bool) -> dict[str, float]:
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(y).reshape(-1).astype(np.int64)
    if from_logits:
        log_proba = _log_softmax(score)
        proba = np.exp(log_proba)
    else:
        proba = score
        log_proba = np.log(np.clip(score, 1e-300, None))
    pred = score.argmax(axis=1)
    n_classes = score.shape[1]
    # One-vs-rest, averaged over the classes where the binary metric is defined.
    aucs = [roc_auc(y == c, proba[:, c]) for c in range(n_classes)]
    aps = [pr_auc(y == c, proba[:, c]) for c in range(n_classes)]
    return {
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "macro_f1": macro_f1(y, pred),
        "mcc": mcc(y, pred),
        "roc_auc": _nanmean(aucs),
        "pr_auc": _nanmean(aps),
        "log_loss": log_loss(y, log_proba),
    }


def _nanmean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else float("nan")


# ----------------------------------------------------------------------------- regression


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    d = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)
    return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error."""
    d = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)
    return float(np.mean(np.abs(d))) if d.size else float("nan")


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination; NaN when the targets are constant (undefined)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    ss_tot = np.sum((y_true - y_true.mean()) ** 2) if y_true.size else 0.0
    if ss_tot == 0:
        return float("nan")
    return float(1.0 - np.sum((y_true - y_pred) ** 2) / ss_tot)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant or there are fewer than 2 points."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if len(x) < 2:
        return float("nan")
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(xc * xc) * np.sum(yc * yc))
    if denom == 0:
        return float("nan")
    return float(np.clip(np.sum(xc * yc) / denom, -1.0, 1.0))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (Pearson on average ranks, so ties are handled)."""
    return pearson(rankdata(x), rankdata(y))


def _regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {
        "rmse": rmse(y, pred),
        "mae": mae(y, pred),
        "r2": r2(y, pred),
        "spearman": spearman(y, pred),
        "pearson": pearson(y, pred),
    }


def _multi_regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, np.float64)
    pred = np.asarray(pred, np.float64)
    if y.ndim == 1:
        y, pred = y[:, None], pred.reshape(len(y), -1)
    out: dict[str, float] = {}
    per_target: dict[str, list[float]] = {}
    for k in range(y.shape[1]):
        keep = ~np.isnan(y[:, k])  # NaN = target not measured for this record
        for name, value in _regression_metrics(y[keep, k], pred[keep, k]).items():
            out[f"{name}_t{k}"] = value
            per_target.setdefault(name, []).append(value)
    for name, values in per_target.items():
        out[name] = _nanmean(values)
    return out


# ----------------------------------------------------------------------------- tokens


def token_accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """Accuracy over positions whose label is not -100."""
    labels, pred = np.asarray(labels).ravel(), np.asarray(pred).ravel()
    keep = labels != IGNORE_INDEX
    return accuracy(labels[keep], pred[keep]) if keep.any() else float("nan")


def _flatten_tokens(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """(labels (M,), logits (M, C)) over every position of every example."""
    if isinstance(y_true, np.ndarray) and isinstance(y_score, np.ndarray):
        labels = y_true.reshape(-1)
        logits = y_score.reshape(len(labels), -1)
    else:
        labels = np.concatenate([np.asarray(t).reshape(-1) for t in y_true])
        logits = np.concatenate([np.asarray(s).reshape(np.asarray(t).size, -1) for t, s in zip(y_true, y_score)])
    return labels.astype(np.int64), logits.astype(np.float64)


def _token_metrics(y_true: Any, y_score: Any) -> dict[str, float]:
    labels, logits = _flatten_tokens(y_true, y_score)
    keep = labels != IGNORE_INDEX
    labels, logits = labels[keep], logits[keep]
    pred = logits.argmax(axis=1) if len(logits) else np.zeros(0, np.int64)
    return {
        "token_accuracy": accuracy(labels, pred),
        "token_macro_f1": macro_f1(labels, pred) if len(labels) else float("nan"),
    }


# ----------------------------------------------------------------------------- entry point


def _stack(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return np.stack([np.asarray(v) for v in x]) if len(x) else np.zeros(0)


def compute_metrics(target_kind: str, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
    """Every metric of `target_kind` as a flat dict of floats (NaN where undefined).

    `y_true` / `y_score` are arrays or lists of per-example arrays (the trainer's `evaluate`
    callable receives lists). `from_logits=False` means classification scores are probabilities.
    """
    if target_kind not in catalog.TARGET_KINDS:
        raise ValueError(f"unknown target kind {target_kind!r}; expected one of {tuple(catalog.TARGET_KINDS)}")
    from mlcore.kinds import kind_get  # the kinds use the functions above

    return kind_get(target_kind).metrics(y_true, y_score, from_logits=from_logits)
