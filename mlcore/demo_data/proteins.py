"""Protein demo datasets: real antimicrobial peptides (vendored from modlAMP) and two documented
generators where no real, redistributable set ships in a wheel (a stability-like regression target,
per-residue secondary structure).

- `amp-vs-uniprot` (protein-classification, real): modlAMP's 2,600 APD3 antimicrobial peptides vs
  2,600 random UniProt sequences of length 10-50.
- `synthetic-thermostability` (protein-regression, synthetic): a melting-temperature-like target
  from the IVYWREL content that tracks growth temperature across proteomes (Zeldovich et al. 2007),
  asparagine / glutamine content (deamidation) and i/i+4 salt bridges.
- `synthetic-secondary-structure` (residue-labeling, synthetic): helix / strand / coil segments whose
  residues are drawn with the Chou-Fasman propensities, labelled H / E / C per residue.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt

FILES = Path(__file__).parent / "files"
AMINO = "ACDEFGHIKLMNPQRSTVWY"
# Amino-acid background frequencies (UniProtKB/Swiss-Prot release statistics, rounded), AMINO order.
BACKGROUND = np.array([8.25, 1.37, 5.45, 6.75, 3.86, 7.07, 2.27, 5.96, 5.84, 9.66,
                       2.42, 4.06, 4.70, 3.93, 5.53, 6.56, 5.34, 6.87, 1.08, 2.92])
BACKGROUND = BACKGROUND / BACKGROUND.sum()
# Chou & Fasman (1978) conformational parameters P(alpha), P(beta), P(turn), AMINO order.
P_HELIX = np.array([1.42, 0.70, 1.01, 1.51, 1.13, 0.57, 1.00, 1.08, 1.16, 1.21,
                    1.45, 0.67, 0.57, 1.11, 0.98, 0.77, 0.83, 1.06, 1.08, 0.69])
P_STRAND = np.array([0.83, 1.19, 0.54, 0.37, 1.38, 0.75, 0.87, 1.60, 0.74, 1.30,
                     1.05, 0.89, 0.55, 1.10, 0.93, 0.75, 1.19, 1.70, 1.37, 1.47])
P_TURN = np.array([0.66, 1.19, 1.46, 0.74, 0.60, 1.56, 0.95, 0.47, 1.01, 0.59,
                   0.60, 1.56, 1.52, 0.98, 0.95, 1.43, 0.96, 0.50, 0.96, 1.14])


# -- real: antimicrobial peptides ---------------------------------------------------------------


def _amp_build(path: Path, seed: int) -> int:
    lines = (FILES / "modlamp_AMPvsUniProt.csv").read_text(encoding="utf-8").splitlines()
    # modlAMP's format: a header "n_samples,n_features,name_of_0,name_of_1", then "sequence,label".
    rows = []
    for i, line in enumerate(line for line in lines[1:] if line.strip()):
        sequence, label = (part.strip() for part in line.split(","))
        rows.append([f"amp{i + 1:05d}", sequence, int(label)])
    return csv_write(path, ["id", "sequence", "label"], rows)


demo_dataset_register(DemoDataset(
    key="amp-vs-uniprot",
    name="Antimicrobial peptides vs UniProt (modlAMP)",
    modality="protein",
    task_keys=("protein-classification",),
    filename="amp_vs_uniprot.csv",
    format="csv",
    input_col="sequence",
    target_cols=("label",),
    id_col="id",
    synthetic=False,
    description=(
        "Real sequences. 5,200 peptides: label 1 = the 2,600 antimicrobial peptides of the "
        "Antimicrobial Peptide Database APD3 (extracted January 2016), label 0 = 2,600 protein "
        "sequences of length 10-50 drawn at random from UniProt and filtered for unnatural amino "
        "acids. Lengths 7-174 residues (median 32)."
    ),
    provenance=(
        "modlAMP 4.3.3 wheel, modlamp/data/AMPvsUniProt.csv (modlamp.datasets.load_AMPvsUniProt), "
        "vendored byte for byte as mlcore/demo_data/files/modlamp_AMPvsUniProt.csv; ids added here "
        "in file order."
    ),
    citation=(
        "Müller A. T., Gabernet G., Hiss J. A. & Schneider G. (2017) modlAMP: Python for "
        "antimicrobial peptides. Bioinformatics 33(17), 2753-2755, doi:10.1093/bioinformatics/btx285; "
        "Wang G., Li X. & Wang Z. (2016) APD3: the antimicrobial peptide database as a tool for "
        "research and education. Nucleic Acids Res. 44, D1087-D1093, doi:10.1093/nar/gkv1278; "
        "The UniProt Consortium, UniProt: the universal protein knowledgebase."
    ),
    licence=(
        "modlAMP: BSD-3-Clause, copyright ETH Zurich, A. Müller, G. Gabernet, G. Schneider "
        "(files/LICENSE-modlamp.txt); UniProt sequences: CC BY 4.0."
    ),
    n_records=5200,
    build=_amp_build,
))


# -- synthetic: thermostability-like regression -----------------------------------------------

IVYWREL = frozenset("IVYWREL")
ACIDIC, BASIC = frozenset("DE"), frozenset("KR")


def salt_bridges(sequence: str) -> int:
    """Acid/base pairs four residues apart (i, i+4): the salt bridges an alpha helix can form."""
    return sum(
        (a in ACIDIC and b in BASIC) or (a in BASIC and b in ACIDIC)
        for a, b in zip(sequence, sequence[4:])
    )


def thermostability(sequence: str) -> float:
    """Noise-free melting-temperature-like value (degrees C) of a synthetic sequence."""
    n = len(sequence)
    f_ivywrel = sum(a in IVYWREL for a in sequence) / n
    f_nq = sum(a in "NQ" for a in sequence) / n
    bridges = min(salt_bridges(sequence), 8)
    return 55.0 + 150.0 * (f_ivywrel - 0.39) - 60.0 * (f_nq - 0.08) + 1.5 * bridges + 4.0 * np.tanh((n - 100) / 50)


def _thermo_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 201])
    alphabet = np.array(list(AMINO))
    rows = []
    for i in range(1000):
        n = int(rng.integers(50, 151))
        composition = rng.dirichlet(60.0 * BACKGROUND)  # proteins differ in composition, as proteomes do
        seq = list(alphabet[rng.choice(20, size=n, p=composition)])
        for _ in range(int(rng.poisson(2.0))):  # plant a few helical i/i+4 salt bridges
            start = int(rng.integers(0, n - 4))
            seq[start], seq[start + 4] = (("E", "K") if rng.random() < 0.5 else ("K", "E"))
        sequence = "".join(seq)
        target = thermostability(sequence) + rng.normal(0.0, 1.5)
        rows.append([f"thermo{i + 1:05d}", sequence, fmt(target, 5)])
    return csv_write(path, ["id", "sequence", "target"], rows)


demo_dataset_register(DemoDataset(
    key="synthetic-thermostability",
    name="Synthetic protein thermostability",
    modality="protein",
    task_keys=("protein-regression",),
    filename="synthetic_thermostability.csv",
    format="csv",
    input_col="sequence",
    target_cols=("target",),
    id_col="id",
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not measured). 1,000 sequences of 50-150 residues with compositions "
        "that vary from protein to protein (Dirichlet around UniProt background frequencies). "
        "`target` is a melting-temperature-like value in degrees C: 55 + 150 x (IVYWREL fraction - "
        "0.39) - 60 x (N+Q fraction - 0.08) + 1.5 x (i/i+4 acid-base pairs, at most 8) + "
        "4 x tanh((length - 100) / 50) + Gaussian noise (sd 1.5). Composition carries most of the "
        "signal; the salt-bridge term needs residue order."
    ),
    provenance=(
        "Generated by mlcore/demo_data/proteins.py (_thermo_build) with numpy's PCG64 generator; "
        "the same seed writes the same bytes. Nothing is copied from real proteins."
    ),
    citation=(
        "Design after Zeldovich K. B., Berezovsky I. N. & Shakhnovich E. I. (2007) Protein and DNA "
        "sequence determinants of thermophilic adaptation. PLoS Comput. Biol. 3(1), e5, "
        "doi:10.1371/journal.pcbi.0030005."
    ),
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=1000,
    build=_thermo_build,
))


# -- synthetic: per-residue secondary structure -------------------------------------------------


def _emission(propensity: np.ndarray, sharpness: float = 3.0) -> np.ndarray:
    """Residue distribution of a segment type: background x propensity^sharpness, normalized."""
    p = BACKGROUND * propensity**sharpness
    return p / p.sum()


def _secondary_build(path: Path, seed: int) -> int:
    rng = np.random.default_rng([seed, 202])
    alphabet = np.array(list(AMINO))
    emit = {"H": _emission(P_HELIX), "E": _emission(P_STRAND), "C": _emission(P_TURN)}
    lengths = {"H": (8, 23), "E": (4, 11), "C": (2, 9)}  # [low, high) residues per segment
    rows = []
    for i in range(600):
        n = int(rng.integers(60, 181))
        labels: list[str] = []
        state = "C"
        while len(labels) < n:
            lo, hi = lengths[state]
            labels.extend(state * int(rng.integers(lo, hi)))
            state = "C" if state != "C" else ("H" if rng.random() < 0.55 else "E")
        labels = labels[:n]
        residues = [alphabet[rng.choice(20, p=emit[s])] for s in labels]
        rows.append([f"ss{i + 1:05d}", "".join(residues), "".join(labels)])
    return csv_write(path, ["id", "sequence", "labels"], rows)


demo_dataset_register(DemoDataset(
    key="synthetic-secondary-structure",
    name="Synthetic secondary structure (H/E/C)",
    modality="protein",
    task_keys=("residue-labeling",),
    filename="synthetic_secondary_structure.csv",
    format="csv",
    input_col="sequence",
    target_cols=("labels",),
    id_col="id",
    synthetic=True,
    description=(
        "SYNTHETIC (generated, not measured). 600 sequences of 60-180 residues built from "
        "alternating segments: coil (2-8 residues), then a helix (8-22, 55%) or a strand (4-10, "
        "45%). Each residue is drawn from background frequency x Chou-Fasman propensity^3 of its "
        "segment type (helix P(alpha), strand P(beta), coil P(turn)). `labels` holds one "
        "character per residue: H helix, E strand, C coil."
    ),
    provenance=(
        "Generated by mlcore/demo_data/proteins.py (_secondary_build) with numpy's PCG64 "
        "generator; the same seed writes the same bytes. Nothing is copied from real structures."
    ),
    citation=(
        "Design after Chou P. Y. & Fasman G. D. (1978) Prediction of the secondary structure of "
        "proteins from their amino acid sequence. Adv. Enzymol. Relat. Areas Mol. Biol. 47, 45-148, "
        "doi:10.1002/9780470122921.ch2."
    ),
    licence="Generated by Labformer; no third-party data (use freely).",
    n_records=600,
    build=_secondary_build,
))
