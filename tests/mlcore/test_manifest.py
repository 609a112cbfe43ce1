"""mlcore.manifest on its own (no training), and the recipe's manifest with a checkpoint folder inside
the output directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcore.manifest import Manifest, manifest_check, manifest_clear, manifest_read, manifest_units
from tests.mlcore import synthetic


def _write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_write_refuses_a_listed_file_that_is_missing_and_leaves_no_manifest(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    manifest.add(_write(tmp_path / "metrics.json", "{}"), "metrics")
    manifest.add(tmp_path / "report.json", "report")
    with pytest.raises(FileNotFoundError, match="report.json"):
        manifest.write()
    assert not (tmp_path / "manifest.json").exists() and list(tmp_path.iterdir()) == [tmp_path / "metrics.json"]
    with pytest.raises(ValueError, match="unknown output role"):
        manifest.add(tmp_path / "metrics.json", "weights")


def test_units_bundle_directories_and_carry_side_files_as_metadata(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path)
    _write(tmp_path / "model" / "config.json")
    _write(tmp_path / "model" / "model.safetensors")
    manifest.add_dir(tmp_path / "model", "model")
    manifest.add(_write(tmp_path / "explain" / "attention.npz"), "attention",
                 meta_file=_write(tmp_path / "explain" / "samples.json", json.dumps([{"key": 0}])), meta_key="samples")
    manifest.add(tmp_path / "explain" / "samples.json", "explanations")
    manifest.add(_write(tmp_path / "evaluation.npz"), "evaluation", meta={"variant": "baseline"})
    manifest.write()
    assert manifest_check(tmp_path) == []
    units = manifest_units(tmp_path)
    assert [(u.role, u.path, u.is_bundle) for u in units] == [
        ("model", "model", True), ("attention", "explain/attention.npz", False), ("evaluation", "evaluation.npz", False)]
    assert units[0].files == ["model/config.json", "model/model.safetensors"]
    assert units[1].meta == {"samples": [{"key": 0}]} and units[1].files[1] == "explain/samples.json"
    assert units[2].meta == {"variant": "baseline"}


def test_clear_removes_only_what_the_previous_manifest_listed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    outside = _write(tmp_path / "precious.csv", "keep")
    _write(out / "model" / "config.json")
    _write(out / "model" / "mine.txt", "keep")  # someone's file inside a listed folder
    (out / "manifest.json").write_text(json.dumps({"files": {
        "model/config.json": {"role": "model", "bundle": "model"}, "report.json": {"role": "report"},
        "../precious.csv": {"role": "predictions"}}}))
    manifest_clear(out)
    assert not (out / "manifest.json").exists() and not (out / "model" / "config.json").exists()
    assert (out / "model" / "mine.txt").read_text() == "keep" and outside.read_text() == "keep"
    assert manifest_check(out)[0].startswith("no readable manifest.json")


def test_the_recipe_lists_a_checkpoint_folder_inside_its_output(tmp_path: Path) -> None:
    from mlcore.recipe import RecipeConfig, recipe_run

    seqs, labels = synthetic.dna(60, seed=3)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))
    out = tmp_path / "run"
    run = recipe_run(RecipeConfig(task="dna-classification", data=data, out=out, device="cpu", explain_samples=0,
                                  hyperparameters={"epochs": 1, "patience": 0}), checkpoint_dir=out / "checkpoints")
    assert run.out == out and manifest_check(out) == []
    files = manifest_read(out)["files"]
    assert [e["role"] for f, e in files.items() if f.startswith("checkpoints/")] == ["checkpoint"]
    assert next(iter(files)) == "metrics.json"  # the run's order: metrics first, then the model, ...
