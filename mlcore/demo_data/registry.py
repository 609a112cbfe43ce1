"""The demo dataset record type, the registry, and the small writing helpers the builders share.

A `DemoDataset` says what a demo file is (modality, tasks, column mapping), where its data came
from (provenance, citation, licence) and whether it is synthetic; its `build` function writes the
file. Each builder module registers its datasets right under their definitions with
`demo_dataset_register`. Nothing here imports Django or torch.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# build(path, seed) writes the file at `path` and returns the number of records (objects) written.
Builder = Callable[[Path, int], int]


@dataclass(frozen=True)
class DemoDataset:
    """One demo dataset: what it is, how its file is laid out, and where its data came from."""

    key: str
    name: str
    modality: str  # a key of mlcore.catalog.MODALITIES
    task_keys: tuple[str, ...]  # keys of mlcore.catalog.TASKS this file fits
    filename: str
    format: str  # "csv" (sequences, SMILES, tables, and long-format sets / series)
    # Column mapping, as the readers take it. For long formats `input_col` is the object id column.
    # For tabular data `input_col` is "" and every column not named below is a feature.
    input_col: str
    target_cols: tuple[str, ...]
    synthetic: bool
    description: str
    provenance: str
    citation: str
    licence: str
    n_records: int  # records (sequences, molecules, rows) or objects (jets, light curves)
    build: Builder = field(repr=False, compare=False)
    id_col: str | None = None
    group_col: str | None = None
    split_col: str | None = None

    def metadata(self) -> dict[str, Any]:
        """Everything but the builder, as plain JSON-able values (for a dataset's stored description)."""
        data = asdict(self)
        data.pop("build")
        data["task_keys"] = list(self.task_keys)
        data["target_cols"] = list(self.target_cols)
        return data


DEMO_DATASETS: dict[str, DemoDataset] = {}


def demo_dataset_register(dataset: DemoDataset) -> DemoDataset:
    """Add `dataset` to DEMO_DATASETS (a duplicate key is a programming error)."""
    if dataset.key in DEMO_DATASETS:
        raise ValueError(f"demo dataset {dataset.key!r} registered twice")
    DEMO_DATASETS[dataset.key] = dataset
    return dataset


# -- writing helpers --------------------------------------------------------------------------------


def fmt(value: float, digits: int = 6) -> str:
    """A float as short, stable text (`digits` significant digits); the same float gives the same bytes."""
    if not math.isfinite(value):
        raise ValueError(f"refusing to write a non-finite value {value!r}")
    text = f"{value:.{digits}g}"
    return "0" if text == "-0" else text


def csv_write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a CSV with '\\n' line ends and minimal quoting; return the number of data rows."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            n += 1
    return n
