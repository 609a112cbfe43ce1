"""The evaluation views' data: per-record probabilities, values and per-token classes, checked
against hand-computed numbers, and written by a real tiny training run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mlcore.data import TargetEncoder
from mlcore.explain import evaluation_arrays, evaluation_write
from mlcore.recipe import RecipeConfig, recipe_run
from mlcore.taskmodel import collate_fn
from tests.mlcore import synthetic


def test_classification_probabilities_are_the_softmax_of_the_logits() -> None:
    targets = TargetEncoder(kind="binary", target_cols=["label"], classes=["neg", "pos"])
    logits = [np.array([0.0, 0.0]), np.array([0.0, math.log(3)]), np.array([math.log(4), 0.0])]
    out = evaluation_arrays(targets, logits, [0, 1, 1])
    assert np.allclose(out["proba"], [[0.5, 0.5], [0.25, 0.75], [0.8, 0.2]], atol=1e-6)
    assert out["y_true"].tolist() == [0, 1, 1]
    assert out["y_pred"].tolist() == [0, 1, 0]


def test_regression_values_are_in_target_units() -> None:
    targets = TargetEncoder(kind="regression", target_cols=["y"], mean=[10.0], std=[2.0])
    out = evaluation_arrays(targets, [np.array([0.5]), np.array([-1.0])], [np.array([0.0]), np.array([1.0])])
    assert np.allclose(out["y_pred"][:, 0], [11.0, 8.0])
    assert np.allclose(out["y_true"][:, 0], [10.0, 12.0])


def test_token_labels_are_flattened_with_offsets_and_unlabelled_positions_dropped() -> None:
    targets = TargetEncoder(kind="token_labels", target_cols=["labels"], classes=["C", "H"])
    logits = [np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), np.array([[0.0, 2.0], [3.0, 0.0]])]
    labels = [np.array([0, 1, -100]), np.array([1, 1])]
    out = evaluation_arrays(targets, logits, labels)
    assert out["offsets"].tolist() == [0, 2, 4]
    assert out["y_true"].tolist() == [0, 1, 1, 1]
    assert out["y_pred"].tolist() == [0, 1, 1, 0]


def test_a_trained_model_writes_evaluation_arrays_that_reproduce_its_test_metrics(tmp_path: Path) -> None:
    seqs, labels = synthetic.dna(60)
    data = synthetic.write_csv(tmp_path / "dna.csv", ["sequence", "label"], list(zip(seqs, labels)))
    run = recipe_run(RecipeConfig(task="dna-classification", data=data, out=tmp_path / "run", device="cpu",
                                  hyperparameters={"epochs": 2}, explain_samples=2))
    prep = run.prepared
    meta = evaluation_write(tmp_path / "evaluation.npz", model=run.model, test_set=prep.test, targets=prep.targets,
                            featurizer=prep.featurizer, collate=collate_fn(prep.featurizer, prep.targets.kind))
    assert meta == {"kind": "binary", "variant": "baseline", "n": len(prep.test), "classes": ["0", "1"]}
    with np.load(tmp_path / "evaluation.npz") as npz:
        accuracy = float((npz["y_true"] == npz["y_pred"]).mean())
        assert np.allclose(npz["proba"].sum(axis=1), 1.0, atol=1e-5)
    assert math.isclose(accuracy, run.metrics["test"]["accuracy"], abs_tol=1e-9)
