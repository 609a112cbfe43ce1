"""Multi-target regression: several numeric targets per record, missing values masked out of the
loss and the metrics; metrics per target (`rmse_t0`, ...) and their mean."""

from __future__ import annotations

from typing import Any

from mlcore.kinds import kind_register
from mlcore.kinds.regression import NumericKind


@kind_register
class MultiRegressionKind(NumericKind):
    key = "multi_regression"
    several = True

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _multi_regression_metrics, _stack

        return _multi_regression_metrics(_stack(y_true), _stack(y_score))
