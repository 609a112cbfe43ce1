"""DNA demo datasets: synthetic bacterial promoters (no real labelled set ships in a wheel we can use).

Both generators plant the two hexamers that a sigma-70 RNA polymerase recognizes in E. coli
promoters, the -35 box TTGACA and the -10 box TATAAT, separated by a spacer whose best length is
17 bp, into AT-rich background DNA. What makes a promoter strong is taken from the biology
(Harley & Reynolds 1987; Hawley & McClure 1983): matches to both consensus boxes, a spacer close
to 17 bp, an AT-rich UP element upstream of the -35 box and an extended -10 "TG" motif.

- `synthetic-promoters` (dna-classification): promoters vs decoys that carry only one box, or
  both boxes at a spacing no polymerase accepts, or nothing. Composition alone does not separate
  the classes; the spacing between the boxes does, so a model has to relate distant positions.
- `synthetic-promoter-strength` (dna-regression): every sequence is a promoter; `target` is a
  log2 expression level computed from box mismatches, spacer, UP element and TG motif, plus noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt

BASES = np.array(list("ACGT"))
BACKGROUND = np.array([0.28, 0.22, 0.22, 0.28])  # A C G T: E. coli intergenic DNA is AT-rich
BOX35, BOX10 = "TTGACA", "TATAAT"
SEQ_LEN = 100
BEST_SPACER = 17
STRENGTH_START10 = 70  # 0-based start of the -10 box in the strength set (transcription starts ~ +7 bp after it)


def _background(rng: np.random.Generator, n: int) -> list[str]:
    return list(BASES[rng.choice(4, size=n, p=BACKGROUND)])


def _mutate(box: str, n_mismatches: int, rng: np.random.Generator) -> str:
    """`box` with `n_mismatches` positions changed to another base."""
    out = list(box)
    for pos in rng.choice(len(box), size=n_mismatches, replace=False):
        out[pos] = str(rng.choice([b for b in "ACGT" if b != box[pos]]))
    return "".join(out)


def _place(seq: list[str], start: int, motif: str) -> None:
    seq[start:start + len(motif)] = list(motif)


def _promoter(rng: np.random.Generator, *, mm35: int, mm10: int, spacer: int, up: float, tg: bool,
              with35: bool = True, with10: bool = True, start10: int | None = None) -> tuple[str, float]:
    """A 100-bp sequence with the boxes planted, the -10 box starting at `start10` (default: random
    in 62-75, i.e. ending 19-32 bp before the 3' end), and the AT fraction of the 20 bp upstream of
    the -35 box (the UP element) as written."""
    seq = _background(rng, SEQ_LEN)
    if start10 is None:
        start10 = int(rng.integers(62, 76))
    start35 = start10 - spacer - len(BOX35)
    if with10:
        _place(seq, start10, _mutate(BOX10, mm10, rng))
        if tg:
            _place(seq, start10 - 2, "TG")  # extended -10: TGn right upstream of the -10 box
    if with35:
        _place(seq, start35, _mutate(BOX35, mm35, rng))
        # UP element: the 20 bp upstream of -35 with AT fraction pulled towards `up`.
        lo = max(0, start35 - 20)
        for i in range(lo, start35):
            if rng.random() < up:
                seq[i] = "A" if rng.random() < 0.5 else "T"
    window = seq[max(0, start35 - 20):start35]
    return "".join(seq), sum(b in "AT" for b in window) / max(1, len(window))


def _mismatches(rng: np.random.Generator, p: tuple[float, ...]) -> int:
    return int(rng.choice(len(p), p=p))


def _promoters_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 101])
    rows = []
    n = 1200
    for i in range(n):
        label = i % 2  # balanced, interleaved; the trainer shuffles anyway
        mm = (0.3, 0.45, 0.25)
        if label == 1:
            spacer = int(rng.choice([15, 16, 17, 18, 19], p=[0.1, 0.2, 0.4, 0.2, 0.1]))
            seq, _ = _promoter(rng, mm35=_mismatches(rng, mm), mm10=_mismatches(rng, mm), spacer=spacer,
                               up=float(rng.uniform(0, 0.6)), tg=bool(rng.random() < 0.3))
        else:
            kind = rng.choice(4, p=[0.4, 0.2, 0.2, 0.2])
            spacer = int(rng.choice([8, 9, 10, 11, 23, 24, 25, 26]))
            seq, _ = _promoter(rng, mm35=_mismatches(rng, mm), mm10=_mismatches(rng, mm), spacer=spacer,
                               up=float(rng.uniform(0, 0.6)), tg=bool(rng.random() < 0.3),
                               with35=kind in (1, 3), with10=kind in (2, 3))
        rows.append([f"prom{i + 1:05d}", seq, label])
    return csv_write(path, ["id", "sequence", "label"], rows)


def promoter_strength(mm35: int, mm10: int, spacer: int, up_at: float, tg: bool) -> float:
    """Noise-free log2 expression of the synthetic promoter (the regression target's mean)."""
    return 8.0 - 1.1 * mm35 - 1.4 * mm10 - 0.6 * abs(spacer - BEST_SPACER) + 2.0 * (up_at - 0.56) + 0.5 * tg


def _strength_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 102])
    rows = []
    for i in range(1000):
        mm35 = _mismatches(rng, (0.25, 0.35, 0.25, 0.15))
        mm10 = _mismatches(rng, (0.25, 0.35, 0.25, 0.15))
        spacer = int(rng.integers(14, 21))
        tg = bool(rng.random() < 0.3)
        # Aligned on the transcription start, as promoter libraries are: the -10 box sits at a fixed
        # place and the -35 box moves with the spacer.
        seq, up_at = _promoter(rng, mm35=mm35, mm10=mm10, spacer=spacer, up=float(rng.uniform(0, 0.8)), tg=tg,
                               start10=STRENGTH_START10)
        target = promoter_strength(mm35, mm10, spacer, up_at, tg) + rng.normal(0.0, 0.3)
        rows.append([f"str{i + 1:05d}", seq, fmt(target, 5)])
    return csv_write(path, ["id", "sequence", "target"], rows)


_GENERATOR_PROVENANCE = (
    "Generated by mlcore/demo_data/dna.py ({fn}) with numpy's PCG64 generator; the same seed "
    "writes the same bytes. Nothing is copied from real genomes."
)
_PROMOTER_CITATION = (
    "Design after Harley C. B. & Reynolds R. P. (1987) Analysis of E. coli promoter sequences. "
    "Nucleic Acids Res. 15, 2343-2361, doi:10.1093/nar/15.5.2343; Hawley D. K. & McClure W. R. "
    "(1983) Nucleic Acids Res. 11, 2237-2255, doi:10.1093/nar/11.8.2237."
)

demo_dataset_register(DemoDataset(
    key="synthetic-promoters",
    name="Synthetic sigma-70 promoters vs decoys",
    modality="dna",
    task_keys=("dna-classification",),
    filename="synthetic_promoters.csv",
    format="csv",
    input_col="sequence",
    target_cols=("label",),
    id_col="id",
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not measured). 1,200 sequences of 100 bp, balanced. label 1: a "
        "sigma-70-like promoter, a -35 box (TTGACA) and a -10 box (TATAAT), each with 0-2 "
        "mismatches, 15-19 bp apart (mostly 17), sometimes with an UP element and an extended -10 TG. "
        "label 0: AT-rich background (40%), only the -35 box (20%), only the -10 box (20%), or both "
        "boxes 8-11 or 23-26 bp apart (20%). The boxes' spacing, not composition, tells the classes "
        "apart."
    ),
    provenance=_GENERATOR_PROVENANCE.format(fn="_promoters_build"),
    citation=_PROMOTER_CITATION,
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=1200,
    build=_promoters_build,
))

demo_dataset_register(DemoDataset(
    key="synthetic-promoter-strength",
    name="Synthetic promoter strength",
    modality="dna",
    task_keys=("dna-regression",),
    filename="synthetic_promoter_strength.csv",
    format="csv",
    input_col="sequence",
    target_cols=("target",),
    id_col="id",
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not measured). 1,000 promoter-like sequences of 100 bp; `target` is a "
        "log2 expression level: 8 - 1.1 x (mismatches in the -35 box) - 1.4 x (mismatches in the "
        "-10 box) - 0.6 x |spacer - 17| + 2 x (AT fraction of the 20 bp upstream of -35 - 0.56) "
        "+ 0.5 x (extended -10 TG present) + Gaussian noise (sd 0.3). 0-3 mismatches per box, "
        "spacers of 14-20 bp; sequences are aligned on the promoter: the -10 box always starts at "
        "position 71 (1-based) and the -35 box moves with the spacer."
    ),
    provenance=_GENERATOR_PROVENANCE.format(fn="_strength_build"),
    citation=_PROMOTER_CITATION,
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=1000,
    build=_strength_build,
))
