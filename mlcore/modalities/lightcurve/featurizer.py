"""Light curves: irregularly sampled multi-band photometry with a continuous-time encoding.

A record is a dict of equal-length arrays: `time` (days, any zero point), `flux`, `flux_err` and
`band` (a filter name such as "g" or a number). One token per observation. Positions are not indices
but real times: the stem encodes `time - first time` with sinusoids of geometrically spaced periods
(0.05 to 2000 days), so two observations a day apart look a day apart whatever the cadence, gaps
and season breaks included. A learned band embedding tells the filters apart.

Flux values are scaled per object (median and a robust scale), with the object's median and scale
kept as two extra features: the shape of the curve and its brightness both reach the model, and
objects with fluxes orders of magnitude apart share one input range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.base import Example, Featurizer, RecordError, featurizer_register, pad_1d, pad_2d
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.lightcurve import rules

def lightcurve_validate(record: Any, max_len: int) -> dict[str, Any]:
    """A light curve checked by the light-curve rules (`rules.check`): time-sorted float64 arrays
    (`band`: a list of str)."""
    return rules.check(record, RuleOptions(max_len=max_len)).parsed


class TimeEncoding(nn.Module):
    """Sinusoids of the real time at fixed geometric periods, then a learned projection to D."""

    def __init__(self, d_model: int, n_freq: int = 32, min_period: float = 0.05, max_period: float = 2000.0) -> None:
        super().__init__()
        periods = torch.logspace(math.log10(min_period), math.log10(max_period), n_freq)
        self.register_buffer("omega", 2 * math.pi / periods)  # (n_freq,)
        self.proj = nn.Linear(2 * n_freq, d_model)

    def forward(self, t: Tensor) -> Tensor:
        angle = t.unsqueeze(-1) * self.omega  # (B, T, n_freq)
        return self.proj(torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1))  # (B, T, D)


class LightcurveStem(nn.Module):
    """values (B, T, 4), time (B, T), band (B, T) -> (x (B, T, D), pad_mask, None)."""

    def __init__(self, n_values: int, n_bands: int, d_model: int) -> None:
        super().__init__()
        self.values = nn.Sequential(nn.Linear(n_values, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.time = TimeEncoding(d_model)
        self.band = nn.Embedding(n_bands, d_model, padding_idx=0)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, values: Tensor, time: Tensor, band: Tensor, pad_mask: Tensor, **_: Tensor) -> tuple[Tensor, Tensor, None]:
        x = self.values(values) + self.time(time) + self.band(band)  # (B, T, D)
        return self.norm(x) * pad_mask.unsqueeze(-1), pad_mask, None


@featurizer_register
class LightcurveFeaturizer(Featurizer):
    """Light-curve dict records -> per-observation values, relative times and band ids."""

    modality = "lightcurve"

    def __init__(self, *, max_len: int = 256) -> None:
        super().__init__(max_len=max_len)
        self.bands: list[str] = ["[PAD]", "[UNK]"]

    def fit(self, records: Iterable[Any]) -> LightcurveFeaturizer:
        seen: set[str] = set()
        for record in records:
            try:
                seen.update(lightcurve_validate(record, self.max_len)["band"])
            except RecordError:
                continue
        self.bands += sorted(seen - set(self.bands))
        return self

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "bands": self.bands}

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        lc = lightcurve_validate(record, self.max_len)
        flux, err = lc["flux"], lc["flux_err"]
        center = float(np.median(flux))
        # Robust scale (MAD), falling back to the typical error for a flat curve.
        scale = float(1.4826 * np.median(np.abs(flux - center)))
        if scale <= 0:
            scale = float(np.median(err)) if np.median(err) > 0 else 1.0
        n = len(flux)
        values = np.stack([
            (flux - center) / scale, err / scale,
            np.full(n, np.arcsinh(center)), np.full(n, np.log(scale)),
        ], axis=1)
        band_ids = {b: i for i, b in enumerate(self.bands)}
        return {
            "values": values.astype(np.float32),
            "time": (lc["time"] - lc["time"][0]).astype(np.float32),
            "band": np.array([band_ids.get(b, 1) for b in lc["band"]], dtype=np.int64),
        }

    def length(self, example: Example) -> int:
        return len(example["time"])

    def token_labels(self, example: Example) -> list[str]:
        return [f"{self.bands[b]}@{t:.2f}" for b, t in zip(example["band"], example["time"])]

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        values, mask = pad_2d([e["values"] for e in examples])
        time, _ = pad_1d([e["time"] for e in examples], 0.0, torch.float32)
        band, _ = pad_1d([e["band"] for e in examples], 0, torch.long)
        return {"values": values, "time": time, "band": band, "pad_mask": mask}

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        return LightcurveStem(4, len(self.bands), d_model)
