"""Tests for mlcore.catalog: light import, complete entries, lookups and hyperparameter validation."""

import subprocess
import sys

import pytest

from mlcore import catalog

EXPECTED_TASKS = {
    "dna-classification", "dna-regression", "protein-classification", "protein-regression",
    "residue-labeling", "molecule-classification", "molecule-regression", "jet-tagging",
    "lightcurve-classification", "tabular-classification", "tabular-regression",
    "tabular-multilabel", "molecule-multilabel", "protein-multilabel",
}


def test_catalog_imports_without_torch() -> None:
    # A fresh interpreter: this test process may already have torch loaded by other tests.
    code = "import sys, mlcore, mlcore.catalog; print(sorted(m for m in ('torch', 'numpy', 'django') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_tasks_are_exactly_the_contract_and_consistent() -> None:
    assert set(catalog.TASKS) == EXPECTED_TASKS
    for task in catalog.TASKS.values():
        assert task.modality in catalog.MODALITIES
        kind = catalog.TARGET_KINDS[task.target_kind]
        assert task.primary_metric == kind.primary_metric and task.primary_metric in task.metrics
        expected_col = {"binary": "label", "multiclass": "label", "token_labels": "labels",
                        "multi_label": "label"}.get(task.target_kind, "target")
        assert task.default_target_col == expected_col
    assert "roc_auc" in catalog.task_get("dna-classification").metrics
    assert set(catalog.MODALITIES) == {"dna", "protein", "smiles", "particles", "lightcurve", "tabular"}
    assert catalog.MODALITIES["dna"].default_input_col == "sequence"
    assert catalog.MODALITIES["smiles"].default_input_col == "smiles"


def test_task_get_lists_valid_keys() -> None:
    with pytest.raises(KeyError, match="dna-classification"):
        catalog.task_get("dna-clasification")
    assert [t.key for t in catalog.tasks_for_modality("protein")] == [
        "protein-classification", "protein-regression", "residue-labeling", "protein-multilabel"]
    with pytest.raises(KeyError):
        catalog.tasks_for_modality("audio")


def test_target_kind_resolution() -> None:
    assert catalog.task_target_kind("jet-tagging", n_classes=2) == "binary"
    assert catalog.task_target_kind("jet-tagging", n_classes=5) == "multiclass"
    assert catalog.task_target_kind("molecule-regression", n_targets=1) == "regression"
    assert catalog.task_target_kind("molecule-regression", n_targets=3) == "multi_regression"
    with pytest.raises(ValueError):
        catalog.task_target_kind("dna-classification", n_classes=1)


def test_presets_and_profiles() -> None:
    assert catalog.PRESETS["tiny"] == {"d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128, "dropout": 0.1}
    for name, shape in catalog.PRESETS.items():
        assert shape["d_model"] % shape["n_heads"] == 0
        assert set(catalog.PRESET_TRAINING[name]) == {"batch_size", "lr", "epochs"}
    assert set(catalog.PROFILES) == {"baseline", "mixed-precision", "pruned", "slim", "int8", "distilled", "compact"}


def test_hyperparameters_validate() -> None:
    values = catalog.hyperparameters_validate({"epochs": "8", "lr": 0.01, "augment": "true"}, preset="tiny")
    assert values["epochs"] == 8 and values["lr"] == 0.01 and values["augment"] is True
    assert values["batch_size"] == catalog.PRESET_TRAINING["tiny"]["batch_size"]
    for bad, field in (({"epochs": 0}, "epochs"), ({"lr": "fast"}, "lr"), ({"batch_size": 2.5}, "batch_size"),
                       ({"epochs": True}, "epochs"), ({"precision": "fp8"}, "precision"),
                       ({"warmup_frac": float("nan")}, "warmup_frac"), ({"colour": 1}, "colour")):
        with pytest.raises(ValueError, match=field):
            catalog.hyperparameters_validate(bad)
