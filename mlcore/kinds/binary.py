"""Binary classification: two classes, any labels (0/1 in sorted order); a two-logit softmax head."""

from __future__ import annotations

from typing import Any

from mlcore.kinds import kind_register
from mlcore.kinds.multiclass import ClassKind


@kind_register
class BinaryKind(ClassKind):
    key = "binary"

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _binary_metrics, _stack

        return _binary_metrics(_stack(y_true), _stack(y_score), from_logits)
