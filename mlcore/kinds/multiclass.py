"""Multi-class classification (and the shared single-label classification behaviour binary reuses):
text labels -> class ids in sorted order, a softmax head with optional class weights, cross-entropy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.kinds import kind_register
from mlcore.kinds.base import Kind, label_parse, to_float


def _label_sort_key(label: str) -> tuple[int, float, str]:
    number = to_float(label)
    return (0, number, label) if number is not None and math.isfinite(number) else (1, 0.0, label)


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape[1] == 1:  # one logit: the positive class's log-odds
        p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class ClassKind(Kind):
    """Single-label classification: one class per record among the training data's labels."""

    stats_kind = "classification"

    def resolve(self, target_cols: Sequence[str], values: Sequence[Any]) -> str:
        from mlcore import catalog

        n = len({str(v) for v in values})
        if n < 2:
            raise ValueError(f"classification needs at least 2 classes in the training data, found {n}")
        return catalog.kind_resolve(self.key, n_classes=n)

    def fit(self, enc: Any, values: Sequence[Any]) -> None:
        enc.classes = sorted({str(v) for v in values}, key=_label_sort_key)

    def n_outputs(self, enc: Any) -> int:
        return len(enc.classes)

    def encode(self, enc: Any, value: Any) -> Any:
        text = str(value)
        if text not in enc.classes:
            raise ValueError(f"label {text!r} was not seen in training (classes: {', '.join(enc.classes)})")
        return enc.classes.index(text)

    def metric_inputs(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        return np.asarray([int(np.asarray(y).reshape(-1)[0]) for y in labels]), np.stack(logits)

    def true_labels(self, enc: Any, records: Sequence[Any], encoded: Sequence[Any]) -> list[Any]:
        return [enc.classes[int(y)] for y in encoded]

    def split_labels(self, values: Sequence[Any]) -> list[Any] | None:
        return list(values)

    def stratify(self, encoded: Sequence[Any]) -> list[int] | None:
        return [int(y) for y in encoded]

    def class_weights(self, encoded: Sequence[Any], n_outputs: int) -> Any:
        from mlcore.taskmodel import class_weights_balanced

        return class_weights_balanced(encoded, n_outputs)

    def head(self, d_model: int, n_outputs: int, dropout: float, class_weights: Any = None) -> Any:
        from mlcore.model import ClassificationHead

        return ClassificationHead(d_model, n_outputs, class_weights=class_weights, dropout=dropout)

    def collate_labels(self, labels: list[Any]) -> Any:
        import torch

        return torch.as_tensor(labels, dtype=torch.long)

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _multiclass_metrics, _stack

        return _multiclass_metrics(_stack(y_true), _stack(y_score), from_logits)

    def decode(self, enc: Any, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        scores = np.stack(logits).astype(np.float64)  # (N, C)
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return [{"prediction": enc.classes[int(p.argmax())], "probabilities": dict(zip(enc.classes, p.tolist()))}
                for p in probs]

    def prediction_header(self, enc: Any) -> list[str]:
        return ["prediction", *(f"prob_{c}" for c in enc.classes)]

    def prediction_cells(self, enc: Any, prediction: dict[str, Any]) -> list[Any]:
        return [prediction["prediction"], *(f"{prediction['probabilities'][c]:.6g}" for c in enc.classes)]

    def evaluation_arrays(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
        """`y_true` (N,) class index, `proba` (N, C) float32, `y_pred` (N,) argmax."""
        y_true, y_score = self.metric_inputs(enc, logits, labels) if len(logits) else ([], [])
        proba = _softmax(np.asarray(y_score)) if len(y_score) else np.zeros((0, max(2, len(enc.classes))))
        return {"y_true": np.asarray(y_true, dtype=np.int64), "proba": proba.astype(np.float32),
                "y_pred": proba.argmax(axis=1).astype(np.int64)}

    def evaluation_meta(self, enc: Any) -> dict[str, Any]:
        return {"classes": list(enc.classes)}

    def validation_kind(self, target_cols: Sequence[str]) -> str:
        return self.key

    def validation_parse(self, plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int]) -> dict[str, list[Any]]:
        return label_parse(plan, chunk, col, lengths, unread)

    def validation_summary(self, result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
        result.labels = out[plan.target_cols[0]]

    def validation_stats(self, acc: Any, plan: Any, options: Any, problems: list[Any], drop_lines: set[int]) -> dict[str, Any] | None:
        from mlcore.validation import Problem, value_text

        small = {c: n for c, n in acc.classes.items() if n < options.min_per_class}
        for label, count in sorted(small.items()):
            for line in acc.class_lines.get(label, []):
                problems.append(Problem(line, plan.target_cols[0], "class_too_small",
                                        f"class {label!r} has {count} example(s); classification needs at least "
                                        f"{options.min_per_class} per class", value_text(label)))
                drop_lines.add(line)
        kept = {c: n for c, n in acc.classes.items() if c not in small}
        total = sum(kept.values())
        stats = {
            "kind": self.stats_kind, "n_classes": len(kept),
            "classes": dict(sorted(kept.items(), key=lambda kv: -kv[1])),
            "balance": {c: n / total for c, n in kept.items()} if total else {},
            "imbalance_ratio": (max(kept.values()) / min(kept.values())) if kept else None,
        }
        if acc.too_many_classes:
            problems.append(Problem(None, plan.target_cols[0], "too_many_classes",
                                    f"more than {options.max_classes} distinct labels: is this a "
                                    "numeric target for a regression task?"))
        elif len(kept) < 2:
            problems.append(Problem(None, plan.target_cols[0], "too_few_classes",
                                    f"classification needs at least 2 classes with {options.min_per_class}"
                                    f"+ examples, found {len(kept)}"))
        return stats


@kind_register
class MulticlassKind(ClassKind):
    key = "multiclass"
