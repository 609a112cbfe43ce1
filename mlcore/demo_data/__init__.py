"""Demo datasets: one small file per task for the demo lab, the docs and quick experiments.

Real data is preferred and comes from packages the project already pins (scikit-learn's and
RDKit's bundled sets, read from the installed package) or is vendored under `files/` with its
licence (modlAMP's antimicrobial peptides, the RDKit book's solubility set). Where no real offline
set exists (particle-level jets, light curves, promoter strength, per-residue structure) a
documented generator writes a synthetic set, labelled synthetic in its description. Nothing is
fetched at run time.

    from mlcore.demo_data import DEMO_DATASETS, demo_dataset_write
    path = demo_dataset_write("synthetic-jets", Path("/tmp/demo"), seed=0)
    spec = DEMO_DATASETS["synthetic-jets"]  # spec.input_col, spec.target_cols, spec.metadata()

Each builder module registers its datasets right under their definitions; importing this package
registers them all. Django-free and torch-free (numpy; scikit-learn and RDKit only inside the
builders that read their files).
"""

from __future__ import annotations

from pathlib import Path

from mlcore.demo_data import dna, jets, lightcurves, molecules, multilabel, proteins, tabular  # noqa: F401  (registration)
from mlcore.demo_data.registry import DEMO_DATASETS, DemoDataset, demo_dataset_register

__all__ = [
    "DEMO_DATASETS",
    "DemoDataset",
    "demo_dataset_get",
    "demo_dataset_register",
    "demo_dataset_write",
    "demo_datasets_for_task",
]


def demo_dataset_get(key: str) -> DemoDataset:
    """The demo dataset `key`; KeyError listing the valid keys otherwise."""
    try:
        return DEMO_DATASETS[key]
    except KeyError:
        raise KeyError(f"unknown demo dataset {key!r}; valid: {', '.join(sorted(DEMO_DATASETS))}") from None


def demo_datasets_for_task(task_key: str) -> list[DemoDataset]:
    """Every demo dataset that fits task `task_key`, real ones first, then in registration order."""
    fitting = [d for d in DEMO_DATASETS.values() if task_key in d.task_keys]
    return sorted(fitting, key=lambda d: d.synthetic)  # stable: keeps registration order within each


def demo_dataset_write(key: str, directory: Path, *, seed: int = 0) -> Path:
    """Write demo dataset `key` into `directory` (created if needed) as `spec.filename`; return the path.

    Deterministic: the same key and seed write the same bytes. `seed` only affects synthetic sets;
    real ones are written the same whatever the seed. An existing file of that name is replaced.
    """
    spec = demo_dataset_get(key)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.filename
    tmp = path.with_name(path.name + ".partial")
    try:
        n = spec.build(tmp, seed)
        tmp.replace(path)  # a crash mid-write never leaves a truncated file under the real name
    finally:
        tmp.unlink(missing_ok=True)
    if n != spec.n_records:
        raise RuntimeError(f"demo dataset {key!r} wrote {n} records, its entry says {spec.n_records}")
    return path
