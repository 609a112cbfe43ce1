"""Particle-physics demo dataset: synthetic boosted-boson vs QCD jets at particle level.

No real particle-level jet set ships inside a wheel, so this module simulates one with a toy
model whose knobs come from jet-substructure physics (Larkoski, Moult & Nachman 2020):

- Jets have pT 450-650 GeV, |eta| < 2, any phi, radius R = 0.8 around the jet axis.
- Signal (label 1), a boosted W or Z decaying to two quarks: two prongs sharing the jet momentum
  as z and 1 - z (z uniform in 0.03-0.97), separated by Delta R = m / (pT sqrt(z (1 - z))) so the
  jet mass peaks near the boson mass (80.4 or 91.2 GeV, smeared by a 5 GeV resolution; showers
  and the underlying event push it up by about 10 GeV). Each prong is a colour-singlet quark
  shower: few, collimated particles.
- Background (label 0), QCD: one prong from a quark (40%) or gluon (60%: more particles, wider),
  and in half the jets a hard gluon emission (soft fraction z with a 1/z spectrum in 0.03-0.5,
  angle log-uniform in 0.08-0.75), which gives QCD its mass tail and makes some QCD jets look
  two-pronged.
- Within a prong, particle momentum fractions are Gamma(0.7)-distributed and softer particles
  fly wider (angular scale ~ 1/sqrt(pT)); a little soft underlying event is sprinkled over the
  jet area; particles below 0.5 GeV are dropped and at most 100 are kept (the hardest).
- Each particle gets a species with realistic fractions (charged pions, kaons, protons; photons;
  K_L and neutrons; a few electrons and muons), hence `pid` (PDG code), `charge` and a mass for E.

Long format: one row per particle, `object_id` (the jet), pt [GeV], eta, phi, energy [GeV],
charge, pid, and the jet's `label` repeated on its rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt

JET_R = 0.8
PT_MIN = 0.5  # GeV, particle threshold
MAX_PARTICLES = 100
HARD_EMISSION = 0.5  # fraction of QCD jets with a hard, wide-angle gluon emission (a second prong)
# (pid of the positive / neutral state, charge, mass GeV, probability). Charged states flip sign.
SPECIES = (
    (211, 1, 0.13957, 0.50),  # pi+-
    (321, 1, 0.49368, 0.07),  # K+-
    (2212, 1, 0.93827, 0.04),  # p, pbar
    (22, 0, 0.0, 0.25),  # photons (from pi0 decays)
    (130, 0, 0.49761, 0.05),  # K_L
    (2112, 0, 0.93957, 0.05),  # n
    (11, -1, 0.000511, 0.02),  # e-+ (PDG 11 is the electron, charge -1)
    (13, -1, 0.10566, 0.02),  # mu-+
)
_SPECIES_P = np.array([s[3] for s in SPECIES]) / sum(s[3] for s in SPECIES)


Particles = tuple[np.ndarray, np.ndarray, np.ndarray]  # (pt, d_eta, d_phi), one entry per particle


def _prong(rng: np.random.Generator, pt: float, n_mean: float, spread: float) -> Particles:
    """A collinear shower of total `pt`: (pt, d_eta, d_phi) of its particles about the prong axis."""
    n = max(2, int(rng.poisson(n_mean)))
    x = rng.gamma(0.7, size=n)
    x /= x.sum()
    pts = pt * x
    # Softer particles fly wider: angular scale ~ spread * sqrt(10 GeV / pT), capped.
    scale = np.minimum(0.35, spread * np.sqrt(10.0 / np.maximum(pts, 1e-3)))
    r = rng.exponential(scale)
    angle = rng.uniform(0.0, 2 * math.pi, size=n)
    return pts, r * np.cos(angle), r * np.sin(angle)


def _two_prongs(rng: np.random.Generator, pt: float, z: float, delta_r: float,
                lead: tuple[float, float], soft: tuple[float, float]) -> list[Particles]:
    """Two prongs with momentum fractions 1 - z and z, Delta R apart, balanced about the jet axis."""
    angle = rng.uniform(0.0, 2 * math.pi)
    ux, uy = math.cos(angle), math.sin(angle)
    out = []
    for frac, (n_mean, spread), offset in ((1 - z, lead, -z * delta_r), (z, soft, (1 - z) * delta_r)):
        p, de, dp = _prong(rng, frac * pt, n_mean, spread)
        out.append((p, de + offset * ux, dp + offset * uy))
    return out


def _jet(rng: np.random.Generator, signal: bool) -> Particles:
    pt = float(rng.uniform(450.0, 650.0))
    if signal:
        mass = float(rng.normal(80.4 if rng.random() < 0.5 else 91.2, 5.0))
        z = float(rng.uniform(0.03, 0.97))
        # Very asymmetric decays open wide: the soft prong then falls (partly) outside the jet and
        # the jet looks one-pronged and light, as in real taggers' inefficiency.
        delta_r = mass / (pt * math.sqrt(z * (1 - z)))
        prongs = _two_prongs(rng, pt, z, delta_r, lead=(14.0, 0.03), soft=(14.0, 0.03))
    else:
        gluon = rng.random() < 0.6
        shower = (38.0, 0.055) if gluon else (24.0, 0.04)
        if rng.random() < HARD_EMISSION:
            z = float(math.exp(rng.uniform(math.log(0.03), math.log(0.5))))  # 1/z spectrum
            delta_r = float(math.exp(rng.uniform(math.log(0.08), math.log(0.75))))  # 1/theta spectrum
            prongs = _two_prongs(rng, pt, z, delta_r, lead=shower, soft=(0.5 * shower[0], 0.06))
        else:
            prongs = [_prong(rng, pt, *shower)]
    # Soft underlying event spread uniformly over the jet area.
    n_ue = int(rng.poisson(4.0))
    r_ue = JET_R * np.sqrt(rng.uniform(size=n_ue))
    a_ue = rng.uniform(0.0, 2 * math.pi, size=n_ue)
    prongs.append((0.5 + rng.exponential(0.6, size=n_ue), r_ue * np.cos(a_ue), r_ue * np.sin(a_ue)))
    pts = np.concatenate([p[0] for p in prongs])
    d_eta = np.concatenate([p[1] for p in prongs])
    d_phi = np.concatenate([p[2] for p in prongs])
    keep = (pts >= PT_MIN) & (np.hypot(d_eta, d_phi) < JET_R)
    pts, d_eta, d_phi = pts[keep], d_eta[keep], d_phi[keep]
    order = np.argsort(-pts, kind="stable")[:MAX_PARTICLES]
    return pts[order], d_eta[order], d_phi[order]


def _jets_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 301])
    rows = []
    n_jets = 600
    for j in range(n_jets):
        label = j % 2
        pts, d_eta, d_phi = _jet(rng, signal=bool(label))
        jet_eta = float(rng.uniform(-2.0, 2.0))
        jet_phi = float(rng.uniform(-math.pi, math.pi))
        species = rng.choice(len(SPECIES), size=len(pts), p=_SPECIES_P)
        flips = rng.random(len(pts)) < 0.5
        for pt, de, dp, s, flip in zip(pts, d_eta, d_phi, species, flips):
            pid, charge, mass, _ = SPECIES[s]
            if charge != 0 and flip:
                pid, charge = -pid, -charge
            eta = jet_eta + de
            phi = (jet_phi + dp + math.pi) % (2 * math.pi) - math.pi
            energy = math.sqrt((pt * math.cosh(eta)) ** 2 + mass**2)
            rows.append([f"jet{j + 1:05d}", fmt(pt, 5), fmt(eta, 5), fmt(phi, 5), fmt(energy, 6),
                         charge, pid, label])
    csv_write(path, ["object_id", "pt", "eta", "phi", "energy", "charge", "pid", "label"], rows)
    return n_jets


demo_dataset_register(DemoDataset(
    key="synthetic-jets",
    name="Synthetic boosted W/Z vs QCD jets",
    modality="particles",
    task_keys=("jet-tagging",),
    filename="synthetic_jets.csv",
    format="csv",
    input_col="object_id",
    target_cols=("label",),
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not simulated with a real event generator or detector). 600 jets "
        "(R = 0.8, pT 450-650 GeV, |eta| < 2), balanced: label 1 = boosted W/Z -> qq' (two prongs, "
        "jet mass mostly 83-106 GeV: the boson mass broadened by the showers and the underlying "
        "event), label 0 = QCD quark/gluon jets (one prong, half with a hard gluon emission; jet "
        "mass mostly 38-102 GeV). Long format, one row per particle (about 20-60 per jet): object_id is "
        "the jet id; pt and energy in GeV; eta; phi in (-pi, pi]; charge; pid (PDG code)."
    ),
    provenance=(
        "Generated by mlcore/demo_data/jets.py (_jets_build) with numpy's PCG64 generator; the "
        "same seed writes the same bytes. A toy model, not Pythia/Delphes: the prong kinematics "
        "(z, Delta R = m / (pT sqrt(z(1-z)))), multiplicities and species fractions are chosen to "
        "look like boosted-jet data, not tuned to it."
    ),
    citation=(
        "Design after Larkoski A. J., Moult I. & Nachman B. (2020) Jet substructure at the Large "
        "Hadron Collider: a review of recent advances in theory and machine learning. Phys. Rep. "
        "841, 1-63, doi:10.1016/j.physrep.2019.11.001; the task mirrors the JetClass/Top-tagging "
        "benchmarks (Qu, Li & Qian 2022, Particle Transformer, arXiv:2202.03772)."
    ),
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=600,
    build=_jets_build,
))
