"""Tabular demo datasets: real, citable sets that scikit-learn ships inside its wheel.

scikit-learn is a pinned dependency and its loaders read these files from the installed package
(`sklearn/datasets/data/`), so nothing is fetched. Column names are made CLI-friendly (snake_case,
no spaces or slashes); values are written exactly as scikit-learn reads them.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlcore.demo_data.registry import DemoDataset, csv_write, demo_dataset_register, fmt


def _column(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def _breast_cancer_build(path: Path, seed: int) -> int:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    header = [_column(n) for n in data.feature_names] + ["label"]
    return csv_write(path, header, ([fmt(v, 8) for v in row] + [str(data.target_names[t])]
                                    for row, t in zip(data.data, data.target)))


def _wine_build(path: Path, seed: int) -> int:
    from sklearn.datasets import load_wine

    data = load_wine()
    header = [_column(n) for n in data.feature_names] + ["label"]
    # target_names are class_0..class_2; the UCI documentation calls them cultivars 1-3.
    return csv_write(path, header, ([fmt(v, 8) for v in row] + [f"cultivar_{t + 1}"]
                                    for row, t in zip(data.data, data.target)))


def _diabetes_build(path: Path, seed: int) -> int:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    header = [_column(n) for n in data.feature_names] + ["target"]
    return csv_write(path, header, ([fmt(v, 8) for v in row] + [fmt(t, 8)]
                                    for row, t in zip(data.data, data.target)))


_SKLEARN_PROVENANCE = (
    "Read from the installed scikit-learn package (a pinned dependency) with "
    "sklearn.datasets.{loader}; the file ships inside scikit-learn's wheel "
    "(sklearn/datasets/data/{file}). Feature names are rewritten in snake_case."
)

demo_dataset_register(DemoDataset(
    key="breast-cancer-wisconsin",
    name="Breast cancer Wisconsin (diagnostic)",
    modality="tabular",
    task_keys=("tabular-classification",),
    filename="breast_cancer_wisconsin.csv",
    format="csv",
    input_col="",
    target_cols=("label",),
    synthetic=False,
    description=(
        "Real measurements. 569 breast masses (fine-needle aspirates), 30 numeric features: the "
        "mean, standard error and worst value of ten nucleus characteristics (radius, texture, "
        "perimeter, area, smoothness, compactness, concavity, concave points, symmetry, fractal "
        "dimension) measured on digitized images. `label` is the diagnosis: malignant (212) or "
        "benign (357). Every other column is a feature."
    ),
    provenance=_SKLEARN_PROVENANCE.format(loader="load_breast_cancer()", file="breast_cancer.csv"),
    citation=(
        "Street W. N., Wolberg W. H. & Mangasarian O. L. (1993) Nuclear feature extraction for breast "
        "tumor diagnosis. Proc. SPIE 1905, 861-870, doi:10.1117/12.148698; UCI Machine Learning "
        "Repository, Breast Cancer Wisconsin (Diagnostic), doi:10.24432/C5DW2B."
    ),
    licence="CC BY 4.0 (UCI Machine Learning Repository); shipped in scikit-learn (BSD-3-Clause).",
    n_records=569,
    build=_breast_cancer_build,
))

demo_dataset_register(DemoDataset(
    key="wine-cultivars",
    name="Wine cultivars (chemical analysis)",
    modality="tabular",
    task_keys=("tabular-classification",),
    filename="wine_cultivars.csv",
    format="csv",
    input_col="",
    target_cols=("label",),
    synthetic=False,
    description=(
        "Real measurements. Chemical analysis (13 numeric constituents: alcohol, malic acid, ash, "
        "flavanoids, proline, colour intensity, ...) of 178 wines grown in one region of Italy from "
        "three cultivars; `label` is the cultivar (cultivar_1: 59, cultivar_2: 71, cultivar_3: 48), "
        "so the task runs as multi-class."
    ),
    provenance=_SKLEARN_PROVENANCE.format(loader="load_wine()", file="wine_data.csv"),
    citation=(
        "Aeberhard S. & Forina M. (1991) Wine. UCI Machine Learning Repository, doi:10.24432/C5PC7J."
    ),
    licence="CC BY 4.0 (UCI Machine Learning Repository); shipped in scikit-learn (BSD-3-Clause).",
    n_records=178,
    build=_wine_build,
))

demo_dataset_register(DemoDataset(
    key="diabetes-progression",
    name="Diabetes progression",
    modality="tabular",
    task_keys=("tabular-regression",),
    filename="diabetes_progression.csv",
    format="csv",
    input_col="",
    target_cols=("target",),
    synthetic=False,
    description=(
        "Real measurements. 442 diabetes patients, ten baseline variables in original units: age "
        "(years), sex (1/2), body-mass index, mean blood pressure and six blood serum measurements "
        "(s1-s6: total cholesterol, LDL, HDL, total/HDL ratio, log triglycerides, glucose). "
        "`target` is a quantitative measure of disease progression one year after baseline (25-346)."
    ),
    provenance=_SKLEARN_PROVENANCE.format(loader="load_diabetes(scaled=False)",
                                          file="diabetes_data_raw.csv.gz, diabetes_target.csv.gz"),
    citation=(
        "Efron B., Hastie T., Johnstone I. & Tibshirani R. (2004) Least angle regression. "
        "Ann. Statist. 32(2), 407-499, doi:10.1214/009053604000000067."
    ),
    licence="Distributed with scikit-learn (BSD-3-Clause) from the authors' public data file.",
    n_records=442,
    build=_diabetes_build,
))
