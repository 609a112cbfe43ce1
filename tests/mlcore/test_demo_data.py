"""Demo datasets: every task has one, files are deterministic, fit their tasks and parse cleanly.

Each file is written once per session (module fixture) and read back with the training reader
(`mlcore.data.load_records`) and the modality's featurizer, so "parses" means what training means.
When `mlcore.validation` exists (the dataset issue), every file must also validate with no problem.
"""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mlcore.catalog import MODALITIES, TARGET_KINDS, TASKS, task_target_kind
from mlcore.data import Table, TargetEncoder, load_records
from mlcore.demo_data import DEMO_DATASETS, DemoDataset, demo_dataset_write, demo_datasets_for_task

KEYS = sorted(DEMO_DATASETS)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("demo")
    return {key: demo_dataset_write(key, directory, seed=0) for key in KEYS}


def _table(spec: DemoDataset, path: Path) -> Table:
    return load_records(path, modality=spec.modality, input_col=spec.input_col or None,
                        target_cols=list(spec.target_cols), id_col=spec.id_col)


def test_every_task_has_a_demo_dataset() -> None:
    missing = [task for task in TASKS if not demo_datasets_for_task(task)]
    assert not missing, f"tasks without a demo dataset: {missing}"


def test_real_datasets_come_first_for_a_task() -> None:
    for task in TASKS:
        flags = [d.synthetic for d in demo_datasets_for_task(task)]
        assert flags == sorted(flags), task


@pytest.mark.parametrize("key", KEYS)
def test_entry_fits_the_catalog(key: str) -> None:
    spec = DEMO_DATASETS[key]
    modality = MODALITIES[spec.modality]
    assert spec.key == key and spec.task_keys and spec.n_records > 0
    for task_key in spec.task_keys:
        task = TASKS[task_key]
        assert task.modality == spec.modality, (task_key, spec.modality)
        if TARGET_KINDS[task.target_kind].several_targets and len(spec.target_cols) > 1:
            continue  # several label / target columns: named with --target-col a,b,c
        # The CLI defaults find the columns: no --input-col / --target-col needed.
        assert spec.target_cols == (task.default_target_col,)
    assert spec.input_col == modality.default_input_col
    assert spec.format == "csv" and spec.filename.endswith(".csv")
    json.dumps(spec.metadata())  # storable as a dataset's description


@pytest.mark.parametrize("key", KEYS)
def test_provenance_and_synthetic_label(key: str) -> None:
    spec = DEMO_DATASETS[key]
    assert spec.provenance and spec.citation and spec.licence and spec.description
    if spec.synthetic:
        assert spec.description.startswith("SYNTHETIC"), "a synthetic set must say so first"
    else:
        assert "synthetic" not in spec.description.lower()
        assert spec.description.startswith("Real")


@pytest.mark.parametrize("key", KEYS)
def test_write_is_deterministic(key: str, written: dict[str, Path], tmp_path: Path) -> None:
    spec = DEMO_DATASETS[key]
    again = demo_dataset_write(key, tmp_path / "again", seed=0)
    assert again.name == spec.filename
    assert again.read_bytes() == written[key].read_bytes()
    other = demo_dataset_write(key, tmp_path / "other", seed=1).read_bytes()
    # Only generators depend on the seed; real data is the same whatever the seed.
    assert (other != written[key].read_bytes()) == spec.synthetic


@pytest.mark.parametrize("key", KEYS)
def test_targets_fit_the_tasks(key: str, written: dict[str, Path]) -> None:
    spec = DEMO_DATASETS[key]
    table = _table(spec, written[key])
    assert len(table.records) == spec.n_records
    targets = [r.target for r in table.records]
    for task_key in spec.task_keys:
        task = TASKS[task_key]
        if task.is_classification:
            counts = collections.Counter(str(t) for t in targets)
            assert len(counts) >= 2 and min(counts.values()) >= 2, counts
            task_target_kind(task, n_classes=len(counts))  # raises on fewer than 2 classes
        elif task.is_regression:
            values = [float(t) for t in targets]
            assert all(math.isfinite(v) for v in values)
            assert len(set(values)) >= 20, "a regression target should vary"
        elif task.target_kind == "multi_label":  # several 1/0 columns, some cells missing
            assert all(len(t) == len(spec.target_cols) for t in targets)
            for k in range(len(spec.target_cols)):
                column = collections.Counter(str(t[k]) for t in targets)
                assert set(column) <= {"0", "1", "None", ""} and column["0"] >= 10 and column["1"] >= 10, column
        else:  # per-token labels: one label per residue, from a small alphabet
            for r in table.records:
                assert len(r.target) == len(r.input), r.id
            assert set("".join(targets)) == set("HEC")


@pytest.mark.parametrize("key", KEYS)
def test_records_parse_with_the_modality(key: str, written: dict[str, Path]) -> None:
    from mlcore.modalities import featurizer_build

    spec = DEMO_DATASETS[key]
    modality = MODALITIES[spec.modality]
    table = _table(spec, written[key])
    inputs = [r.input for r in table.records]
    if modality.alphabet:
        letters = set("".join(inputs).upper())
        assert letters <= set(modality.alphabet), letters - set(modality.alphabet)
    if spec.modality == "smiles":
        from rdkit import Chem

        assert all(Chem.MolFromSmiles(s) is not None for s in inputs)
    if spec.modality in ("particles", "lightcurve"):
        assert all(set(modality.element_fields) <= set(x) for x in inputs)
        assert min(len(x[modality.element_fields[0]]) for x in inputs) >= 2
    featurizer = featurizer_build(spec.modality, max_len=modality.default_max_len).fit(inputs)
    for record in table.records:
        featurizer.encode(record.input)  # raises RecordError on an invalid record
    task = TASKS[spec.task_keys[0]]
    targets = [r.target for r in table.records]
    kind = TargetEncoder.resolve_kind(task.target_kind, spec.target_cols, targets)
    encoder = TargetEncoder.fit(kind, spec.target_cols, targets)
    for record in table.records:
        encoder.check(record.target, len(record.input) if kind == "token_labels" else None)


@pytest.mark.parametrize("key", KEYS)
def test_validates_without_problems(key: str, written: dict[str, Path]) -> None:
    from mlcore.readers import ColumnMapping
    from mlcore.validation import validate_file

    spec = DEMO_DATASETS[key]
    mapping = ColumnMapping(input_cols=(spec.input_col,) if spec.input_col else (),
                            target_cols=spec.target_cols, id_col=spec.id_col)
    for task in spec.task_keys:
        report = validate_file(written[key], task=task, mapping=mapping, policy="strict").report()
        assert report["rows"] == report["valid"] == spec.n_records
        assert report["invalid"] == 0 and report["problems"] == [], report["problems"][:5]


def test_import_loads_neither_torch_nor_django() -> None:
    code = (
        "import sys, mlcore.demo_data\n"
        "bad = [m for m in ('torch', 'django') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
