"""Tabular records, FT-Transformer style (Gorishniy et al., 2021): one token per feature.

A record is a dict column -> value. At fit time each feature column becomes numeric (every present
value parses as a number) or categorical. A numeric value x of feature f becomes the token
`standardize(x) * W[f] + b[f]`; a categorical value its own embedding row. A missing value (empty,
NaN, "NA", "?" or a declared sentinel such as -999) becomes a learned per-feature "missing" vector:
zeroing it would make "missing" indistinguishable from "equal to the mean", and missingness often
carries signal of its own. Tokens come in the fitted column order, numeric features first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.catalog import DEFAULT_SENTINELS, number_or_missing
from mlcore.modalities.base import Example, Featurizer, featurizer_register
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.tabular import rules
from mlcore.modalities.tabular.rules import is_missing as _is_missing

_as_number = number_or_missing  # the name bench/quality.py imports
# Categorical ids per feature: 0 missing, 1 unseen at training time, 2.. the fitted categories.
_CAT_MISSING, _CAT_UNKNOWN, _CAT_OFFSET = 0, 1, 2


class TabularStem(nn.Module):
    """num (B, Fn), num_missing (B, Fn), cat (B, Fc) -> (x (B, Fn+Fc, D), pad_mask, None)."""

    def __init__(self, n_numeric: int, cat_sizes: Sequence[int], d_model: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_numeric, d_model) * 0.02)  # (Fn, D)
        self.bias = nn.Parameter(torch.randn(n_numeric, d_model) * 0.02)  # (Fn, D), the feature's identity
        self.missing = nn.Parameter(torch.randn(n_numeric, d_model) * 0.02)  # (Fn, D)
        offsets = np.concatenate([[0], np.cumsum(cat_sizes)[:-1]]) if len(cat_sizes) else np.zeros(0)
        self.register_buffer("cat_offsets", torch.as_tensor(offsets, dtype=torch.long))  # (Fc,)
        # One table for every categorical feature (offset per feature); each feature's row 0 is its
        # learned "missing" vector. No table at all without categorical features: a parameter that
        # never gets a gradient breaks DistributedDataParallel ("stem.cat.weight" under torchrun).
        self.cat: nn.Embedding | None = None
        if len(cat_sizes):
            self.cat = nn.Embedding(int(sum(cat_sizes)), d_model)
            nn.init.normal_(self.cat.weight, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
        # Model directories saved before the table became optional hold a one-row placeholder
        # `cat.weight` for a stem without categorical features: it was never used, so drop it.
        if self.cat is None:
            state_dict.pop(f"{prefix}cat.weight", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, num: Tensor, num_missing: Tensor, cat: Tensor, **_: Tensor) -> tuple[Tensor, Tensor, None]:
        tokens = num.unsqueeze(-1) * self.weight + self.bias  # (B, Fn, D)
        tokens = torch.where(num_missing.unsqueeze(-1), self.missing.expand_as(tokens), tokens)
        if self.cat is not None and cat.shape[1]:
            tokens = torch.cat([tokens, self.cat(cat + self.cat_offsets)], dim=1)  # (B, Fn+Fc, D)
        pad_mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return self.norm(tokens), pad_mask, None


@featurizer_register
class TabularFeaturizer(Featurizer):
    """Row dicts -> standardized numeric values with missing flags, and categorical ids."""

    modality = "tabular"

    def __init__(self, *, columns: Sequence[str] = (), sentinels: Sequence[float] = DEFAULT_SENTINELS,
                 max_categories: int = 1000, max_len: int = 512) -> None:
        super().__init__(max_len=max_len)
        self.columns = list(columns)
        self.sentinels = [float(s) for s in sentinels]
        self.max_categories = max_categories
        self.numeric: list[str] = []
        self.mean: list[float] = []
        self.std: list[float] = []
        self.categorical: dict[str, list[str]] = {}

    def fit(self, records: Iterable[dict[str, Any]]) -> TabularFeaturizer:
        records = list(records)
        if not self.columns:
            if not records:
                raise ValueError("no records to fit on")
            self.columns = list(records[0])
        if len(self.columns) > self.max_len:
            raise ValueError(f"{len(self.columns)} feature columns is more than max_len {self.max_len}")
        for col in self.columns:
            values = [r.get(col) for r in records]
            present = [v for v in values if not _is_missing(v, self.sentinels)]
            numbers = [number_or_missing(v) for v in present]
            if all(n is not None for n in numbers):
                arr = np.asarray(numbers, dtype=np.float64)
                self.numeric.append(col)
                self.mean.append(float(arr.mean()) if len(arr) else 0.0)
                std = float(arr.std()) if len(arr) else 1.0
                self.std.append(std if std > 1e-12 else 1.0)
            else:
                counts: dict[str, int] = {}
                for v in present:
                    counts[str(v).strip()] = counts.get(str(v).strip(), 0) + 1
                # The most frequent categories; the rest share the "unseen" id.
                top = sorted(counts, key=lambda c: (-counts[c], c))[: self.max_categories]
                self.categorical[col] = sorted(top)
        return self

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "columns": self.columns, "sentinels": self.sentinels,
                "max_categories": self.max_categories, "numeric": self.numeric, "mean": self.mean,
                "std": self.std, "categorical": self.categorical}

    @property
    def feature_order(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        cells = rules.check(record, RuleOptions(numeric=frozenset(self.numeric), sentinels=tuple(self.sentinels)),
                            columns=self.feature_order).value  # None: missing; numbers in numeric columns
        num = np.zeros(len(self.numeric), dtype=np.float32)
        num_missing = np.zeros(len(self.numeric), dtype=bool)
        for i, col in enumerate(self.numeric):
            if cells[col] is None:
                num_missing[i] = True
            else:
                num[i] = (cells[col] - self.mean[i]) / self.std[i]
        cat = np.zeros(len(self.categorical), dtype=np.int64)
        for j, (col, cats) in enumerate(self.categorical.items()):
            if cells[col] is None:
                cat[j] = _CAT_MISSING
            else:
                k = _bisect(cats, cells[col])
                cat[j] = _CAT_OFFSET + k if k is not None else _CAT_UNKNOWN
        return {"num": num, "num_missing": num_missing, "cat": cat}

    def length(self, example: Example) -> int:
        return len(example["num"]) + len(example["cat"])

    def token_labels(self, example: Example) -> list[str]:
        return self.feature_order

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        return {
            "num": torch.as_tensor(np.stack([e["num"] for e in examples])),
            "num_missing": torch.as_tensor(np.stack([e["num_missing"] for e in examples])),
            "cat": torch.as_tensor(np.stack([e["cat"] for e in examples])),
        }

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        sizes = [_CAT_OFFSET + len(c) for c in self.categorical.values()]
        return TabularStem(len(self.numeric), sizes, d_model)


def _bisect(sorted_values: list[str], value: str) -> int | None:
    import bisect

    k = bisect.bisect_left(sorted_values, value)
    return k if k < len(sorted_values) and sorted_values[k] == value else None
