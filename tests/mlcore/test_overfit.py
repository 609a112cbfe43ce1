"""Every modality: a tiny model overfits 32 synthetic records in seconds (loss low, train metric ~perfect).

This is the cheapest end-to-end check that featurizer, stem, encoder, head, collate and the trainer
fit together and that gradients reach every part: a wiring bug leaves the loss high.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mlcore.data import TargetEncoder
from mlcore.model import encoder_tiny
from mlcore.taskmodel import ExampleSet, collate_fn, evaluate_fn, featurizer_for_task, model_build
from mlcore.trainer import TrainConfig, predict, train
from tests.mlcore import synthetic


def overfit(task: str, inputs: list[Any], raw_targets: list[Any], *, epochs: int, target_cols: list[str] | None = None,
            kind: str, lr: float = 3e-3, **featurizer_options: Any) -> tuple[float, dict[str, float]]:
    """Train a tiny model without dropout on (inputs, targets); return (final train loss, train metrics)."""
    torch.manual_seed(0)
    featurizer = featurizer_for_task(task, **featurizer_options).fit(inputs)
    cols = target_cols or ["y"]
    kind = TargetEncoder.resolve_kind(kind, cols, raw_targets)
    targets = TargetEncoder.fit(kind, cols, raw_targets)
    examples = [featurizer.encode(x) for x in inputs]
    data = ExampleSet(featurizer, inputs, examples, [targets.encode(t) for t in raw_targets])
    max_len = max(featurizer.length(e) for e in examples)
    model = model_build(featurizer, encoder_tiny(dropout=0.0, attn_dropout=0.0, max_len=max_len), kind,
                        targets.n_outputs)
    collate = collate_fn(featurizer, kind)
    config = TrainConfig(epochs=epochs, batch_size=8, lr=lr, warmup_frac=0.1, patience=None, seed=0, device="cpu",
                         weight_decay=0.0)
    result = train(model=model, train_set=data, val_set=None, collate=collate, length=featurizer.length,
                   evaluate=evaluate_fn(targets), primary_metric="loss", greater_is_better=False, config=config)
    model = result.model.eval()
    with torch.no_grad():
        loss = float(model(**collate([data[i] for i in range(len(data))])).loss)
    logits = predict(model=model, dataset=data, collate=collate, length=featurizer.length, batch_size=16, device="cpu")
    return loss, evaluate_fn(targets)(logits, [np.asarray(y) for y in data.labels])


def test_dna_classification_overfits() -> None:
    seqs, labels = synthetic.dna(32)
    loss, m = overfit("dna-classification", seqs, labels, epochs=40, kind="binary", max_len=64)
    assert loss < 0.05 and m["accuracy"] == 1.0, (loss, m)


def test_dna_regression_overfits() -> None:
    seqs, gc = synthetic.dna_gc(32)
    loss, m = overfit("dna-regression", seqs, gc, epochs=30, kind="regression")
    assert m["r2"] > 0.95, (loss, m)


def test_protein_residue_labeling_overfits() -> None:
    seqs, labels = synthetic.protein_residues(32)
    loss, m = overfit("residue-labeling", seqs, labels, epochs=15, kind="token_labels")
    assert loss < 0.05 and m["token_accuracy"] == 1.0, (loss, m)


def test_protein_classification_overfits() -> None:
    seqs, _ = synthetic.protein_residues(32)
    labels = ["1" if s.count("K") + s.count("R") > s.count("D") + s.count("E") else "0" for s in seqs]
    loss, m = overfit("protein-classification", seqs, labels, epochs=25, kind="binary")
    assert loss < 0.1 and m["accuracy"] == 1.0, (loss, m)


def test_molecule_classification_overfits() -> None:
    smiles, labels, _ = synthetic.molecules(32)
    loss, m = overfit("molecule-classification", smiles, labels, epochs=20, kind="binary")
    assert loss < 0.05 and m["accuracy"] == 1.0, (loss, m)


def test_molecule_multi_regression_with_missing_targets_overfits() -> None:
    smiles, _, targets = synthetic.molecules(32)
    assert any(t[1] == "" for t in targets)  # missing values are part of the test
    loss, m = overfit("molecule-regression", smiles, targets, epochs=40, kind="multi_regression",
                      target_cols=["atoms", "oxygens"])
    assert m["r2_t0"] > 0.95 and m["r2_t1"] > 0.95, (loss, m)


def test_jet_tagging_overfits() -> None:
    jets, labels = synthetic.jets(32)
    loss, m = overfit("jet-tagging", jets, labels, epochs=15, kind="binary")
    assert loss < 0.05 and m["accuracy"] == 1.0, (loss, m)


def test_lightcurve_multiclass_overfits() -> None:
    curves, labels = synthetic.lightcurves(33)
    loss, m = overfit("lightcurve-classification", curves, labels, epochs=20, kind="multiclass")
    assert loss < 0.05 and m["accuracy"] == 1.0, (loss, m)


def test_tabular_regression_with_missing_values_overfits() -> None:
    rows, ys, _ = synthetic.tabular(32)
    loss, m = overfit("tabular-regression", rows, ys, epochs=40, kind="regression")
    assert m["r2"] > 0.95, (loss, m)


def test_tabular_classification_overfits() -> None:
    rows, _, labels = synthetic.tabular(32)
    loss, m = overfit("tabular-classification", rows, labels, epochs=60, kind="binary")
    assert loss < 0.1 and m["accuracy"] == 1.0, (loss, m)
