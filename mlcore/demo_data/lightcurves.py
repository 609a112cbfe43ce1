"""Astronomy demo dataset: synthetic multi-band light curves of variable and transient sources.

No labelled light-curve set ships inside a wheel, so this module draws five classes from the
textbook models a survey classifier (e.g. the PLAsTiCC challenge, Kessler et al. 2019) must tell
apart, observed the way a ground-based survey observes: on random nights of a 150-day season with
a gap, one to three visits a night in random bands (g, r, i), with sky and photon noise.

- `sinusoidal`: a pulsating or spotted star, flux = B (1 + A sin(2 pi t / P + phase)),
  P log-uniform in 0.2-20 d, A 5-30%, larger in bluer bands.
- `eclipsing_binary`: constant flux with a primary eclipse (20-60% deep) and a secondary one half
  a period later (0-50% of the primary depth), Gaussian-shaped in phase, P log-uniform 0.5-10 d.
- `rr_lyrae`: the sawtooth of an RR Lyrae star, a fast rise (15% of the cycle) and a slow
  decline, P 0.45-0.75 d, amplitude 40-90% of the mean flux, larger in g.
- `supernova`: a transient on a zero baseline (difference imaging), the Bazin et al. (2009)
  shape A exp(-(t - t0) / tau_fall) / (1 + exp(-(t - t0) / tau_rise)), rise 1-5 d, fall 15-50 d,
  fading faster in bluer bands.
- `agn`: stochastic variability as a damped random walk (Kelly et al. 2009) in magnitude,
  tau 50-300 d, amplitude 0.1-0.3 mag, shared by the bands with a bluer-is-larger scaling.

Fluxes are in arbitrary linear units (think micro-Jansky); flux_err = sqrt(sky^2 + 0.5 |flux|)
and the observed flux is the model plus Gaussian noise of that size, so it can be negative.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt

CLASSES = ("sinusoidal", "eclipsing_binary", "rr_lyrae", "supernova", "agn")
BANDS = ("g", "r", "i")
SEASON_DAYS = 150
GAP = (70, 90)  # nights without observations (weather / moon), as every real season has
PER_CLASS = 80
# Relative amplitude of variability per band (bluer varies more for pulsators and AGN).
AMPLITUDE = {"g": 1.25, "r": 1.0, "i": 0.8}


def _sampling(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Observation times (days, sorted) and bands: random nights, 1-3 visits a night."""
    nights = np.array([d for d in range(SEASON_DAYS) if not GAP[0] <= d < GAP[1]])
    n_nights = int(rng.integers(18, 45))
    times, bands = [], []
    for night in np.sort(rng.choice(nights, size=n_nights, replace=False)):
        n_visits = int(rng.integers(1, 4))
        start = night + rng.uniform(0.05, 0.25)
        for v, band in enumerate(rng.choice(BANDS, size=n_visits, replace=False)):
            times.append(start + 0.02 * v + rng.uniform(0.0, 0.01))
            bands.append(str(band))
    return np.array(times), np.array(bands)


def _phase(t: np.ndarray, period: float, offset: float) -> np.ndarray:
    return np.mod(t / period + offset, 1.0)


def _model(rng: np.random.Generator, kind: str, t: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Noise-free flux of one object of class `kind` at times `t` in `bands`."""
    amp = np.array([AMPLITUDE[b] for b in bands])
    colour = float(rng.lognormal(0.0, 0.3))  # g/r and r/i flux ratio of this object
    base = float(math.exp(rng.uniform(math.log(200.0), math.log(5000.0))))
    baseline = base * np.array([{"g": colour, "r": 1.0, "i": 1.0 / colour}[b] for b in bands])
    offset = float(rng.uniform())
    if kind == "sinusoidal":
        period = math.exp(rng.uniform(math.log(0.2), math.log(20.0)))
        a = rng.uniform(0.05, 0.3)
        return baseline * (1 + a * amp * np.sin(2 * math.pi * _phase(t, period, offset)))
    if kind == "eclipsing_binary":
        period = math.exp(rng.uniform(math.log(0.5), math.log(10.0)))
        depth1 = rng.uniform(0.2, 0.6)
        depth2 = depth1 * rng.uniform(0.0, 0.5)
        width = rng.uniform(0.02, 0.06)
        ph = _phase(t, period, offset)
        d1 = np.minimum(ph, 1 - ph)  # phase distance to the primary eclipse
        d2 = np.abs(ph - 0.5)
        dip = depth1 * np.exp(-0.5 * (d1 / width) ** 2) + depth2 * np.exp(-0.5 * (d2 / width) ** 2)
        return baseline * (1 - dip)
    if kind == "rr_lyrae":
        period = rng.uniform(0.45, 0.75)
        a = rng.uniform(0.4, 0.9)
        rise = 0.15
        ph = _phase(t, period, offset)
        shape = np.where(ph < rise, ph / rise, 1 - (ph - rise) / (1 - rise))  # 0 -> 1 fast, 1 -> 0 slow
        return baseline * (1 + a * amp * (shape - 0.5))
    if kind == "supernova":
        t0 = rng.uniform(5.0, 140.0)
        tau_rise = rng.uniform(1.0, 5.0)
        tau_fall = rng.uniform(15.0, 50.0)
        peak = math.exp(rng.uniform(math.log(100.0), math.log(2000.0)))
        fall = tau_fall * np.array([{"g": 0.7, "r": 1.0, "i": 1.3}[b] for b in bands])
        a = peak * np.array([{"g": 1.1, "r": 1.0, "i": 0.8}[b] for b in bands])
        x = t - t0
        return a * np.exp(-x / fall) / (1 + np.exp(-x / tau_rise))
    if kind == "agn":
        tau = rng.uniform(50.0, 300.0)
        sigma = rng.uniform(0.1, 0.3)  # asymptotic rms in magnitudes
        mags = np.empty(len(t))
        mags[0] = rng.normal(0.0, sigma)
        for k in range(1, len(t)):  # exact Ornstein-Uhlenbeck update over each time step
            decay = math.exp(-(t[k] - t[k - 1]) / tau)
            mags[k] = mags[k - 1] * decay + sigma * math.sqrt(1 - decay**2) * rng.normal()
        return baseline * 10 ** (-0.4 * mags * amp)
    raise ValueError(f"unknown light-curve class {kind!r}")


def _lightcurves_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 401])
    rows = []
    n = 0
    for i in range(PER_CLASS):
        for kind in CLASSES:  # interleaved so any prefix of the file is balanced
            n += 1
            t, bands = _sampling(rng)
            flux = _model(rng, kind, t, bands)
            sky = rng.uniform(5.0, 10.0)
            err = np.sqrt(sky**2 + 0.5 * np.abs(flux))
            observed = flux + rng.normal(0.0, err)
            for tk, fk, ek, bk in zip(t, observed, err, bands):
                rows.append([f"obj{n:05d}", fmt(tk, 7), fmt(fk, 6), fmt(ek, 4), bk, kind])
    csv_write(path, ["object_id", "time", "flux", "flux_err", "band", "label"], rows)
    return n


demo_dataset_register(DemoDataset(
    key="synthetic-lightcurves",
    name="Synthetic variable stars, AGN and supernovae",
    modality="lightcurve",
    task_keys=("lightcurve-classification",),
    filename="synthetic_lightcurves.csv",
    format="csv",
    input_col="object_id",
    target_cols=("label",),
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not observed). 400 objects, 80 per class: sinusoidal, "
        "eclipsing_binary, rr_lyrae, supernova, agn. Irregular g/r/i photometry over one 150-day "
        "season with a 20-night gap, 18-44 observed nights and 1-3 visits a night (about 30-100 "
        "observations per object). Long format, one row per observation: object_id is the "
        "object; time in days; flux and flux_err in arbitrary linear units; band; label repeated "
        "on every row of the object."
    ),
    provenance=(
        "Generated by mlcore/demo_data/lightcurves.py (_lightcurves_build) with numpy's PCG64 "
        "generator; the same seed writes the same bytes. Textbook light-curve models with "
        "survey-like sampling and noise, not drawn from a real survey."
    ),
    citation=(
        "Design after Kessler R. et al. (2019) Models and simulations for the Photometric LSST "
        "Astronomical Time Series Classification Challenge (PLAsTiCC). PASP 131, 094501, "
        "doi:10.1088/1538-3873/ab26f1; Bazin G. et al. (2009) A&A 499, 653-660 (supernova shape); "
        "Kelly B. C., Bechtold J. & Siemiginowska A. (2009) ApJ 698, 895-910 (damped random walk)."
    ),
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=400,
    build=_lightcurves_build,
))
