"""Particle sets (jets or events): per-particle feature vectors, no positions, optional pairwise
physics features as an attention bias (as in the Particle Transformer, Qu, Li & Qian 2022).

A record is a dict of equal-length 1-D arrays, one entry per particle: `pt`, `eta`, `phi`, `energy`
(required) and any further numeric fields (e.g. `charge`, `pid`). Per particle the featurizer derives
log pT, log E, their fractions of the jet's, and the offsets (Delta eta, Delta phi, Delta R) from the
jet axis (the sum of all four-vectors), then standardizes every feature with training statistics.

Permutation invariance: nothing in the stem depends on particle order (no positions; a per-particle
MLP; a pairwise bias that permutes with the particles), so the encoder is permutation equivariant
and its [CLS] output invariant. A test shuffles the particles and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mlcore.modalities.base import Example, Featurizer, RecordError, featurizer_register, pad_2d
from mlcore.modalities.common import RuleOptions
from mlcore.modalities.particles import rules
from mlcore.modalities.particles.rules import REQUIRED

DERIVED = ("log_pt", "log_e", "log_pt_frac", "log_e_frac", "d_eta", "d_phi", "d_r")


def _wrap_phi(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


def particles_validate(record: Any, max_len: int) -> dict[str, np.ndarray]:
    """A particle record's fields as float64 arrays, checked by the particle rules (`rules.check`)."""
    return rules.check(record, RuleOptions(max_len=max_len)).parsed


def particle_features(fields: dict[str, np.ndarray], extra: Sequence[str]) -> np.ndarray:
    """(N, 7 + len(extra)) raw per-particle features relative to the jet axis."""
    pt, eta, phi, e = fields["pt"], fields["eta"], fields["phi"], fields["energy"]
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    jpx, jpy, jpz, je = px.sum(), py.sum(), pz.sum(), e.sum()
    jpt = np.hypot(jpx, jpy)
    jeta = np.arcsinh(jpz / jpt) if jpt > 0 else 0.0
    jphi = np.arctan2(jpy, jpx)
    d_eta = eta - jeta
    d_phi = _wrap_phi(phi - jphi)
    cols = [
        np.log(pt), np.log(e), np.log(pt / max(jpt, 1e-12)), np.log(e / je),
        d_eta, d_phi, np.hypot(d_eta, d_phi),
    ]
    cols += [fields[name] for name in extra]
    return np.stack(cols, axis=1)


def pairwise_features(p4: Tensor) -> Tensor:
    """(B, T, 4) [pt, eta, phi, E] -> (B, T, T, 4) ln of Delta R, kT, z and m^2 for every pair."""
    pt, eta, phi, e = p4.unbind(-1)  # each (B, T)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    d_eta = eta[:, :, None] - eta[:, None, :]  # (B, T, T)
    d_phi = torch.remainder(phi[:, :, None] - phi[:, None, :] + torch.pi, 2 * torch.pi) - torch.pi
    d_r = torch.sqrt(d_eta**2 + d_phi**2)
    pt_min = torch.minimum(pt[:, :, None], pt[:, None, :])
    kt = pt_min * d_r
    z = pt_min / (pt[:, :, None] + pt[:, None, :]).clamp(min=1e-8)
    m2 = (e[:, :, None] + e[:, None, :]) ** 2 - (
        (px[:, :, None] + px[:, None, :]) ** 2 + (py[:, :, None] + py[:, None, :]) ** 2 + (pz[:, :, None] + pz[:, None, :]) ** 2
    )
    # The logs compress many orders of magnitude; the floor keeps the diagonal (Delta R = 0) finite.
    return torch.log(torch.stack([d_r, kt, z, m2], dim=-1).clamp(min=1e-6))  # (B, T, T, 4)


class ParticleStem(nn.Module):
    """features (B, T, F), p4 (B, T, 4) -> (x (B, T, D), pad_mask, attn_bias (B, H, T, T) | None)."""

    def __init__(self, n_features: int, d_model: int, n_heads: int, *, pairwise: bool) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_features, d_model), nn.GELU(), nn.Linear(d_model, d_model))
        self.norm = nn.LayerNorm(d_model)
        # A small per-pair MLP turns the 4 physics features into one bias per head (ParT's "U").
        self.pair = nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, n_heads)) if pairwise else None

    def forward(self, features: Tensor, pad_mask: Tensor, p4: Tensor | None = None, **_: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        x = self.norm(self.embed(features)) * pad_mask.unsqueeze(-1)  # (B, T, D)
        bias = None
        if self.pair is not None and p4 is not None:
            pair_mask = pad_mask[:, :, None] & pad_mask[:, None, :]  # (B, T, T)
            # Padding rows hold zeros, which would give log(0); give them a harmless dummy particle.
            safe = torch.where(pad_mask.unsqueeze(-1), p4, torch.tensor([1.0, 0.0, 0.0, 1.0], device=p4.device))
            u = self.pair(pairwise_features(safe))  # (B, T, T, H)
            bias = (u * pair_mask.unsqueeze(-1)).permute(0, 3, 1, 2).contiguous()  # (B, H, T, T)
        return x, pad_mask, bias


@featurizer_register
class ParticlesFeaturizer(Featurizer):
    """Particle dict records -> standardized per-particle features (+ raw four-vectors for pairs)."""

    modality = "particles"

    def __init__(self, *, max_len: int = 128, pairwise: bool = True, extra_fields: Sequence[str] = ()) -> None:
        super().__init__(max_len=max_len)
        self.pairwise = pairwise
        self.extra_fields = list(extra_fields)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None

    def fit(self, records: Iterable[Any]) -> ParticlesFeaturizer:
        rows = []
        for record in records:
            try:
                fields = particles_validate(record, self.max_len)
            except RecordError:
                continue
            if not rows and not self.extra_fields:
                # Every numeric field beyond the four-vector (charge, pid, ...) becomes a feature.
                self.extra_fields = [f for f in fields if f not in REQUIRED]
            rows.append(particle_features(fields, self.extra_fields))
        if not rows:
            raise ValueError("no valid particle records to fit on")
        allrows = np.concatenate(rows)
        self.mean = allrows.mean(axis=0).tolist()
        self.std = np.where(allrows.std(axis=0) > 1e-8, allrows.std(axis=0), 1.0).tolist()
        return self

    def state(self) -> dict[str, Any]:
        return {"max_len": self.max_len, "pairwise": self.pairwise, "extra_fields": self.extra_fields,
                "mean": self.mean, "std": self.std}

    @property
    def feature_names(self) -> list[str]:
        return [*DERIVED, *self.extra_fields]

    def encode(self, record: Any, *, rng: np.random.Generator | None = None) -> Example:
        if self.mean is None:
            raise RuntimeError("ParticlesFeaturizer.fit() must run before encode()")
        fields = rules.check(record, RuleOptions(max_len=self.max_len), needed=self.extra_fields).parsed
        feats = (particle_features(fields, self.extra_fields) - np.asarray(self.mean)) / np.asarray(self.std)
        p4 = np.stack([fields[f] for f in REQUIRED], axis=1)
        return {"features": feats.astype(np.float32), "p4": p4.astype(np.float32)}

    def length(self, example: Example) -> int:
        return len(example["features"])

    def token_labels(self, example: Example) -> list[str]:
        # Particles have no order; label each by its pT so a map is readable.
        return [f"p{i + 1} pt={pt:.3g}" for i, pt in enumerate(example["p4"][:, 0])]

    def collate(self, examples: Sequence[Example]) -> dict[str, Tensor]:
        features, mask = pad_2d([e["features"] for e in examples])
        batch = {"features": features, "pad_mask": mask}
        if self.pairwise:
            batch["p4"], _ = pad_2d([e["p4"] for e in examples])
        return batch

    def stem(self, d_model: int, n_heads: int) -> nn.Module:
        return ParticleStem(len(self.feature_names), d_model, n_heads, pairwise=self.pairwise)

