"""SYNTHETIC test data for the mlcore tests: generated here, not measured anywhere.

Every generator is seeded and small (tens of records), shaped only so that each modality's tokenizer
and stem are exercised and a tiny model can learn the planted signal in seconds. None of this is
real biology, chemistry or physics data and none of it may be presented as such.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

MOTIF = "TTGACGTC"

# A fixed pool of small, valid molecules (hand-written SMILES), some with nitrogen.
MOLECULES = [
    "CCO", "CCN", "CC(=O)O", "c1ccccc1", "c1ccncc1", "CCCC", "CC(C)N", "OCCO", "NCCN", "CC(=O)N",
    "c1ccc(O)cc1", "c1ccc(N)cc1", "CCOC", "CN(C)C", "C1CCCCC1", "C1CCNCC1", "CC#N", "ClCCl", "BrCCO",
    "CC(C)(C)O", "c1ccc2ccccc2c1", "O=C(O)c1ccccc1", "NC(=O)c1ccccc1", "CCCCCO", "CCCCN", "C=CC=C",
    "OC1CCCCC1", "NC1CCCCC1", "CC(O)CC", "CC(N)CC", "[NH4+]", "[O-]C(=O)C",
]


def dna(n: int, seed: int = 0, length: int = 40) -> tuple[list[str], list[str]]:
    """Random sequences; label '1' when MOTIF is planted (every second record), else '0'."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), length))
        if i % 2:
            p = int(rng.integers(0, length - len(MOTIF)))
            s[p:p + len(MOTIF)] = MOTIF
        seqs.append("".join(s))
        labels.append(str(i % 2))
    return seqs, labels


def dna_gc(n: int, seed: int = 0, length: int = 40) -> tuple[list[str], list[str]]:
    """Sequences of varied GC content; target = GC fraction (a regression signal)."""
    rng = np.random.default_rng(seed)
    seqs, targets = [], []
    for _ in range(n):
        gc = rng.uniform(0.1, 0.9)
        s = "".join(rng.choice(list("GCAT"), length, p=[gc / 2, gc / 2, (1 - gc) / 2, (1 - gc) / 2]))
        seqs.append(s)
        targets.append(f"{(s.count('G') + s.count('C')) / length:.4f}")
    return seqs, targets


def protein_residues(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Random protein sequences; per-residue label 'H' for hydrophobic residues (AILMFVW), else 'C'."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for _ in range(n):
        s = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(12, 30))))
        seqs.append(s)
        labels.append("".join("H" if c in "AILMFVW" else "C" for c in s))
    return seqs, labels


def molecules(n: int) -> tuple[list[str], list[str], list[list[str]]]:
    """SMILES, a class label ('1' when the molecule has nitrogen), and two numeric targets (heavy atom
    count, oxygen count) with the second missing on every fourth record."""
    from rdkit import Chem

    smiles = [MOLECULES[i % len(MOLECULES)] for i in range(n)]
    labels = ["1" if "N" in s or "n" in s else "0" for s in smiles]
    targets = []
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        oxygens = sum(a.GetSymbol() == "O" for a in mol.GetAtoms())
        targets.append([str(mol.GetNumAtoms()), "" if i % 4 == 3 else str(oxygens)])
    return smiles, labels, targets


def jets(n: int, seed: int = 0) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Toy jets: class '0' one hard core of collinear particles, class '1' two separated prongs.
    Particle count 8..20, pT falling, eta/phi spread around the prong axes; charge in {-1, 0, 1}."""
    rng = np.random.default_rng(seed)
    records, labels = [], []
    for i in range(n):
        cls = i % 2
        m = int(rng.integers(8, 21))
        pt = np.sort(rng.exponential(20.0, m))[::-1] + 1.0
        eta = rng.normal(0, 0.05, m)
        phi = rng.normal(0, 0.05, m)
        if cls:  # second prong 0.4 away for every other particle
            eta[1::2] += 0.3
            phi[1::2] += 0.3
        energy = pt * np.cosh(eta) * (1 + rng.uniform(0, 0.01, m))
        charge = rng.integers(-1, 2, m).astype(float)
        records.append({"pt": pt, "eta": eta, "phi": phi, "energy": energy, "charge": charge})
        labels.append(str(cls))
    return records, labels


def lightcurves(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """Toy light curves in bands g and r at irregular times: 'periodic' (sinusoid, period 0.5-3 d),
    'transient' (a rise and exponential decay) and 'flat' (noise only)."""
    rng = np.random.default_rng(seed)
    kinds = ["periodic", "transient", "flat"]
    records, labels = [], []
    for i in range(n):
        kind = kinds[i % 3]
        m = int(rng.integers(20, 40))
        t = np.sort(rng.uniform(0, 60, m)) + 58000.0  # MJD-like zero point
        base = rng.uniform(50, 150)
        if kind == "periodic":
            flux = base + 30 * np.sin(2 * np.pi * t / rng.uniform(0.5, 3.0))
        elif kind == "transient":
            t0 = t[0] + rng.uniform(5, 20)
            flux = base + 200 * np.where(t > t0, np.exp(-(t - t0) / 8.0), 0.0)
        else:
            flux = base + np.zeros(m)
        err = np.full(m, 2.0)
        flux = flux + rng.normal(0, 2.0, m)
        records.append({"time": t, "flux": flux, "flux_err": err, "band": rng.choice(["g", "r"], m)})
        labels.append(kind)
    return records, labels


def tabular(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Rows with numeric x1, x2 (some missing: empty or -999) and a categorical 'site' in {a, b, c}.
    Regression target y = 2 x1 - x2 + site effect (+3 where x2 is missing); class = y > median."""
    rng = np.random.default_rng(seed)
    effect = {"a": 0.0, "b": 1.5, "c": -1.5}
    rows, ys = [], []
    for i in range(n):
        x1, x2 = rng.normal(), rng.normal()
        site = "abc"[i % 3]
        missing = i % 5 == 4
        y = 2 * x1 + effect[site] + (3.0 if missing else -x2)
        rows.append({"x1": f"{x1:.4f}", "x2": ("-999" if i % 10 == 4 else "") if missing else f"{x2:.4f}", "site": site})
        ys.append(y)
    median = float(np.median(ys))
    return rows, [f"{y:.4f}" for y in ys], ["1" if y > median else "0" for y in ys]


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """Write a small CSV file (the first line is the header)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path
