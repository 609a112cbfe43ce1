"""The recipe as workers use it: cancellation through a callback, an exact resume from the epoch
checkpoint even with on-the-fly augmentation (reverse complements drawn per epoch), and every input
layout (long-format particles and light curves, multi-target columns, per-residue label strings,
tabular) read from a file, trained, saved and predicted again."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlcore.columns import ColumnMapping
from mlcore.modeldir import model_load
from mlcore.recipe import RecipeConfig, recipe_run
from mlcore.taskmodel import ExampleSet, featurizer_for_task
from mlcore.trainer import Callback, TrainState
from tests.mlcore import synthetic


class StopAfterFirstEpoch(Callback):
    def __init__(self) -> None:
        self.done = False

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        self.done = True

    def should_stop(self) -> bool:
        return self.done


def test_augmentation_differs_per_epoch_and_repeats_exactly() -> None:
    seqs, _ = synthetic.dna(16)
    f = featurizer_for_task("dna-classification")
    data = ExampleSet(f, seqs, [f.encode(s) for s in seqs], None, augment=True, seed=0)

    def draw(epoch: int) -> list[list[int]]:
        data.set_epoch(epoch)
        return [data[i]["tokens"].tolist() for i in range(len(data))]

    first = draw(0)
    assert draw(1) != first and draw(0) == first
    assert any(x != f.encode(s)["tokens"].tolist() for x, s in zip(first, seqs))  # some reverse complements


def test_cancel_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    seqs, labels = synthetic.dna(48, seed=2)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))

    def config(name: str) -> RecipeConfig:
        return RecipeConfig(task="dna-classification", data=data, out=tmp_path / name, device="cpu",
                            hyperparameters={"epochs": 2, "augment": True, "batch_size": 8}, explain_samples=0)

    full = recipe_run(config("full"))

    cancelled = recipe_run(config("part"), callbacks=[StopAfterFirstEpoch()], checkpoint_dir=tmp_path / "ckpt")
    assert cancelled.train_result.stopped_reason == "cancelled"
    assert not (tmp_path / "part" / "model").exists()  # a cancelled run writes no model
    resumed = recipe_run(config("part"), resume_from=tmp_path / "ckpt")

    assert resumed.train_result.stopped_reason == full.train_result.stopped_reason
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for name, tensor in full_state.items():
        assert torch.equal(tensor, resumed_state[name]), name
    assert resumed.metrics["test"] == full.metrics["test"]


def _write_task_file(task: str, path: Path) -> tuple[Path, list[str] | None]:
    """A small synthetic file in the layout users upload for `task`; returns (file, target columns)."""
    if task == "residue-labeling":
        seqs, labels = synthetic.protein_residues(30)
        return synthetic.write_csv(path, ["sequence", "labels"], list(zip(seqs, labels))), None
    if task == "protein-regression":
        seqs, _ = synthetic.protein_residues(30)
        return synthetic.write_csv(path, ["sequence", "target"], [(s, s.count("K") / len(s)) for s in seqs]), None
    if task == "molecule-regression":
        smiles, _, targets = synthetic.molecules(40)
        rows = [(s, *t) for s, t in zip(smiles, targets)]
        return synthetic.write_csv(path, ["smiles", "atoms", "oxygens"], rows), ["atoms", "oxygens"]
    if task == "jet-tagging":  # long format: one row per particle
        jets, labels = synthetic.jets(30)
        rows = [(f"jet{i}", *(f"{jet[k][j]:.5g}" for k in ("pt", "eta", "phi", "energy", "charge")), y)
                for i, (jet, y) in enumerate(zip(jets, labels)) for j in range(len(jet["pt"]))]
        return synthetic.write_csv(path, ["object_id", "pt", "eta", "phi", "energy", "charge", "label"], rows), None
    if task == "lightcurve-classification":  # long format: one row per observation
        curves, labels = synthetic.lightcurves(30)
        rows = [(f"obj{i}", f"{c['time'][j]:.4f}", f"{c['flux'][j]:.4f}", f"{c['flux_err'][j]:.3f}", c["band"][j], y)
                for i, (c, y) in enumerate(zip(curves, labels)) for j in range(len(c["time"]))]
        return synthetic.write_csv(path, ["object_id", "time", "flux", "flux_err", "band", "label"], rows), None
    if task == "tabular-classification":
        rows, _, labels = synthetic.tabular(40)
        return synthetic.write_csv(path, ["x1", "x2", "site", "label"],
                                   [[r["x1"], r["x2"], r["site"], y] for r, y in zip(rows, labels)]), None
    raise AssertionError(task)


@pytest.mark.parametrize("task", ["residue-labeling", "protein-regression", "molecule-regression", "jet-tagging",
                                  "lightcurve-classification", "tabular-classification"])
def test_every_layout_runs_from_a_file_and_predicts(task: str, tmp_path: Path) -> None:
    data, target_cols = _write_task_file(task, tmp_path / "data.csv")
    result = recipe_run(RecipeConfig(task=task, data=data, out=tmp_path / "run", columns=ColumnMapping(target_cols=target_cols),
                                     device="cpu", hyperparameters={"epochs": 1}, explain_samples=2))
    assert result.metrics["test"][result.metrics["primary_metric"]] is not None
    assert len(result.explain.sample_indices) == 2
    loaded = model_load(result.model_dir)
    n = loaded.predict_file(data, tmp_path / "preds.csv")
    assert n == len(loaded.read(data).records) == len((tmp_path / "preds.csv").read_text().splitlines()) - 1


def test_a_run_logs_its_data_every_epoch_and_the_test_metrics(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What a job's log artifact shows: the split sizes, one line per epoch, the test metrics."""
    seqs, labels = synthetic.dna(40, seed=3)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))
    caplog.set_level("INFO", logger="mlcore")
    recipe_run(RecipeConfig(task="dna-classification", data=data, out=tmp_path / "out", device="cpu",
                            hyperparameters={"epochs": 2, "batch_size": 8}, explain_samples=0))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("mlcore")]
    assert any(line.startswith("task dna-classification (binary) on d.csv:") and "train /" in line for line in lines)
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split()[1] for e in epochs] == ["1/2", "2/2"] and all("train_loss=" in e and "val_" in e for e in epochs)
    assert any(line.startswith("trained in") and "roc_auc=" in line for line in lines)


def test_the_fingerprint_hyperparameter_reaches_the_molecule_featurizer(tmp_path: Path) -> None:
    from mlcore.recipe import setup

    smiles, _, targets = synthetic.molecules(40)
    data = synthetic.write_csv(tmp_path / "mols.csv", ["smiles", "atoms"], [[s, t[0]] for s, t in zip(smiles, targets)])
    base = dict(task="molecule-regression", data=data, out=tmp_path / "run", columns=ColumnMapping(target_cols=["atoms"]), device="cpu")
    assert setup(RecipeConfig(**base)).featurizer.fingerprint  # the task's default: on
    off = setup(RecipeConfig(**base, hyperparameters={"fingerprint": False})).featurizer
    assert not off.fingerprint


def test_a_split_column_without_validation_rows_trains_with_a_carved_validation_set(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json

    seqs, labels = synthetic.dna(60, seed=5)
    rows = [[s, y, "test" if i >= 50 else "train"] for i, (s, y) in enumerate(zip(seqs, labels))]
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label", "part"], rows)
    caplog.set_level("INFO", logger="mlcore")
    result = recipe_run(RecipeConfig(task="dna-classification", data=data, out=tmp_path / "out", device="cpu",
                                     columns=ColumnMapping(split_col="part"), hyperparameters={"epochs": 1, "batch_size": 8},
                                     explain_samples=0))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    n_val = metrics["n_val"]  # val_frac 0.1 of each class, rounded per class
    assert 4 <= n_val <= 6 and metrics["n_train"] == 50 - n_val and metrics["n_test"] == 10
    assert metrics["split_notes"][0].startswith(f"the split column has no validation rows: {n_val} of its 50")
    assert result.metrics["val"]  # validation metrics exist
    assert any("the split column has no validation rows" in r.getMessage() for r in caplog.records)
