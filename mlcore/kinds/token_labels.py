"""Per-token labels: one class per token (e.g. per residue), given as a string of the record's length;
a per-token softmax head, unlabelled positions (-100) ignored by loss and metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcore.kinds import kind_register
from mlcore.kinds.base import IGNORE_INDEX, Kind, label_parse


@kind_register
class TokenLabelsKind(Kind):
    key = "token_labels"
    token_level = True

    @property
    def stats_kind(self) -> str:  # type: ignore[override]
        return self.key

    def fit(self, enc: Any, values: Sequence[Any]) -> None:
        enc.classes = sorted({c for v in values for c in str(v)})

    def n_outputs(self, enc: Any) -> int:
        return len(enc.classes)

    def check(self, enc: Any, value: Any, n_tokens: int | None = None) -> None:
        super().check(enc, value, n_tokens)
        if n_tokens is not None and len(str(value)) != n_tokens:
            raise ValueError(f"{len(str(value))} per-token labels for a sequence of {n_tokens} tokens")

    def encode(self, enc: Any, value: Any) -> Any:
        ids = {c: i for i, c in enumerate(enc.classes)}
        return np.asarray([ids.get(c, IGNORE_INDEX) for c in str(value)], dtype=np.int64)

    def metric_inputs(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> tuple[Any, Any]:
        return list(labels), list(logits)

    def head(self, d_model: int, n_outputs: int, dropout: float, class_weights: Any = None) -> Any:
        from mlcore.model import TokenClassificationHead

        return TokenClassificationHead(d_model, n_outputs, ignore_index=IGNORE_INDEX, dropout=dropout)

    def collate_labels(self, labels: list[Any]) -> Any:
        import torch

        from mlcore.modalities.base import pad_1d

        return pad_1d(labels, IGNORE_INDEX, torch.long)[0]

    def distill_loss(self, student: Any, teacher: Any, labels: Any, temperature: float) -> Any:
        keep = labels.reshape(-1) != IGNORE_INDEX  # only labelled tokens count
        student = student.reshape(-1, student.size(-1))[keep]
        teacher = teacher.reshape(-1, teacher.size(-1))[keep]
        return super().distill_loss(student, teacher, labels, temperature)

    def metrics(self, y_true: Any, y_score: Any, *, from_logits: bool = True) -> dict[str, float]:
        from mlcore.metrics import _token_metrics

        return _token_metrics(y_true, y_score)

    def decode(self, enc: Any, logits: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        return [{"prediction": "".join(enc.classes[i] for i in token_logits.argmax(axis=-1))} for token_logits in logits]

    def evaluation_arrays(self, enc: Any, logits: Sequence[np.ndarray], labels: Sequence[Any]) -> dict[str, np.ndarray]:
        """`y_true`, `y_pred` (total tokens,) class index, `offsets` (N + 1,): record i's tokens are
        [offsets[i], offsets[i+1]); unlabelled positions (-100) dropped."""
        y_true, y_score = self.metric_inputs(enc, logits, labels)
        trues, preds, offsets = [], [], [0]
        for lab, lo in zip(y_true, y_score):
            lab = np.asarray(lab, dtype=np.int64).reshape(-1)
            pred = np.asarray(lo).reshape(len(lab), -1).argmax(axis=-1) if len(lab) else np.zeros(0, dtype=np.int64)
            keep = lab != IGNORE_INDEX
            trues.append(lab[keep])
            preds.append(pred[keep])
            offsets.append(offsets[-1] + int(keep.sum()))
        return {"y_true": np.concatenate(trues) if trues else np.zeros(0, dtype=np.int64),
                "y_pred": (np.concatenate(preds) if preds else np.zeros(0)).astype(np.int64),
                "offsets": np.asarray(offsets, dtype=np.int64)}

    def evaluation_meta(self, enc: Any) -> dict[str, Any]:
        return {"classes": list(enc.classes)}

    def validation_parse(self, plan: Any, chunk: Any, col: Any, lengths: list[int], unread: set[int]) -> dict[str, list[Any]]:
        return label_parse(plan, chunk, col, lengths, unread, per_token=True)

    def validation_summary(self, result: Any, plan: Any, out: dict[str, list[Any]]) -> None:
        result.label_chars = Counter()
        for s in out[plan.target_cols[0]]:
            result.label_chars.update(s)

    def validation_stats(self, acc: Any, plan: Any, options: Any, problems: list[Any], drop_lines: set[int]) -> dict[str, Any] | None:
        return {"kind": self.stats_kind, "label_counts": dict(acc.label_chars.most_common())}
