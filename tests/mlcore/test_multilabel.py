"""Multi-label classification (the `multi_label` kind): its loss and metrics by hand, dataset
validation, the CLI on a table (train with `--target-col a,b,c`, then predict), and a molecule run
through the recipe with the distilled profile (predictions, evaluation arrays, distillation)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from mlcore import catalog
from mlcore.data import TargetEncoder
from mlcore.demo_data import demo_dataset_write
from mlcore.kinds import kind_get
from mlcore.metrics import compute_metrics
from mlcore.columns import ColumnMapping

ROOT = Path(__file__).resolve().parents[2]


def acceptance_csv(path: Path, n: int = 600, seed: int = 0) -> Path:
    """4 gaussian features; y1 = x1 > 0, y2 = x2 + x3 > 0, y3 = x4 > 0.5, y3 missing in 5% of rows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4))
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["x1", "x2", "x3", "x4", "y1", "y2", "y3"])
        for row in x:
            y3 = "" if rng.random() < 0.05 else int(row[3] > 0.5)
            w.writerow([f"{v:.5f}" for v in row] + [int(row[0] > 0), int(row[1] + row[2] > 0), y3])
    return path


def test_catalog_describes_the_kind_and_its_tasks() -> None:
    meta = catalog.TARGET_KINDS["multi_label"]
    assert meta.primary_metric == "macro_roc_auc" and meta.greater_is_better and meta.several_targets
    assert not meta.classification and set(meta.evaluation_plots) == {"roc", "pr", "calibration"}
    for key, modality in (("tabular-multilabel", "tabular"), ("molecule-multilabel", "smiles"),
                          ("protein-multilabel", "protein")):
        task = catalog.task_get(key)
        assert task.target_kind == "multi_label" and task.modality == modality
        assert catalog.task_target_kind(task, n_targets=3) == "multi_label"


def test_loss_and_metrics_leave_missing_labels_out() -> None:
    enc = TargetEncoder.fit("multi_label", ["a", "b"], [["1", "0"], ["0", ""], ["1", "1"], ["", "1"]])
    labels = [enc.encode(v) for v in (["1", "0"], ["0", ""], ["1", "1"], ["", "1"])]
    assert enc.n_outputs == 2 and math.isnan(labels[1][1]) and labels[2].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="every label is missing"):
        enc.check(["", ""])
    with pytest.raises(ValueError, match="not 1 / 0"):
        enc.check(["2", "1"])
    kind = kind_get("multi_label")
    batch = kind.collate_labels(labels)
    logits = torch.tensor([[2.0, -1.0], [-3.0, 50.0], [1.0, 0.5], [-50.0, 1.5]])
    head = kind.head(4, 2, 0.0)
    loss = head.loss(logits, batch)
    known = ~torch.isnan(batch)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[known], batch[known])
    assert torch.allclose(loss, expected)  # the +/-50 logits on missing labels cost nothing

    y = np.array([[1, 0], [0, np.nan], [1, 1], [np.nan, 1], [0, 0], [1, np.nan]], dtype=float)
    s = np.array([[2.0, -1.0], [-1.0, 9.0], [0.5, 0.3], [9.0, 1.0], [1.0, 0.4], [-0.5, -9.0]])
    m = compute_metrics("multi_label", list(y), list(s))
    per_roc, per_pr = [], []
    for k in range(2):
        keep = ~np.isnan(y[:, k])
        per_roc.append(roc_auc_score(y[keep, k], s[keep, k]))
        per_pr.append(average_precision_score(y[keep, k], s[keep, k]))
        assert m[f"roc_auc_t{k}"] == pytest.approx(per_roc[k])
        assert m[f"pr_auc_t{k}"] == pytest.approx(per_pr[k])
    assert m["macro_roc_auc"] == pytest.approx(np.mean(per_roc))
    assert m["macro_pr_auc"] == pytest.approx(np.mean(per_pr))
    keep = ~np.isnan(y)
    assert m["micro_roc_auc"] == pytest.approx(roc_auc_score(y[keep], s[keep]))
    assert m["label_accuracy"] == pytest.approx(float(((s[keep] >= 0) == (y[keep] == 1)).mean()))

    decoded = enc.decode([np.array([2.0, -1.0]), np.array([-2.0, -1.0])])
    assert decoded[0]["prediction"] == "a" and decoded[1]["prediction"] == "(none)"
    assert decoded[0]["probabilities"]["a"] == pytest.approx(1 / (1 + math.exp(-2)))
    arrays = kind.evaluation_arrays(enc, list(s), list(y))
    assert arrays["y_true"].shape == arrays["proba"].shape == (6, 2) and np.isnan(arrays["y_true"][1, 1])


def test_validation_checks_labels_and_counts_positives(tmp_path: Path) -> None:
    from mlcore.readers import ColumnMapping
    from mlcore.validation import validate_file

    path = tmp_path / "panel.csv"
    path.write_text("x1,x2,a,b\n1,2,1,0\n3,4,0,\n5,6,,\n7,8,yes,2\n9,1,1,1\n2,2,0,1\n")
    report = validate_file(path, task="tabular-multilabel", mapping=ColumnMapping(target_cols=("a", "b")),
                           policy="skip").report()
    codes = {(p["line"], p["code"]) for p in report["problems"]}
    assert (4, "target_missing") in codes and (5, "label_not_binary") in codes, report["problems"]
    target = report["stats"]["target"]
    assert target["kind"] == "multi_label" and target["classes"] == {"a": 2, "b": 2}
    assert target["labels"]["b"] == {"positives": 2, "negatives": 1, "missing": 1}


def test_cli_trains_a_table_with_several_target_columns_and_predicts(tmp_path: Path) -> None:
    data = acceptance_csv(tmp_path / "ml.csv")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mlcore", "train", "--task", "tabular-multilabel", "--data", str(data),
           "--target-col", "y1,y2,y3", "--preset", "tiny", "--epochs", "8", "--seed", "0", "--no-progress",
           "--out", str(run)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["target_kind"] == "multi_label"
    test = metrics["test"]
    assert test["macro_roc_auc"] >= 0.8, test
    assert {"roc_auc_t0", "roc_auc_t1", "roc_auc_t2", "macro_pr_auc", "micro_roc_auc"} <= set(test)
    assert "macro_roc_auc" in out.stdout  # the printed table lists the kind's metrics

    preds = tmp_path / "preds.csv"
    out = subprocess.run([sys.executable, "-m", "mlcore", "predict", "--model", str(run / "model"), "--data", str(data),
                          "--out", str(preds)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.reader(preds.open()))
    assert rows[0] == ["id", "line", "prediction", "prob_y1", "prob_y2", "prob_y3"]
    assert len(rows) == 601 and all(0.0 <= float(p) <= 1.0 for r in rows[1:] for p in r[3:])
    # The predicted label sets agree with the rules for most rows (y1 = x1 > 0).
    first = [("y1" in r[2].split(";")) == (float(x[0]) > 0) for r, x in zip(rows[1:], list(csv.reader(data.open()))[1:])]
    assert np.mean(first) > 0.8


def test_molecules_train_with_the_distilled_profile(tmp_path: Path) -> None:
    from mlcore.explain import evaluation_arrays
    from mlcore.modeldir import model_load
    from mlcore.recipe import RecipeConfig, recipe_run

    full = demo_dataset_write("synthetic-molecule-multilabel", tmp_path / "demo", seed=0)
    lines = full.read_text().splitlines()
    data = tmp_path / "mols.csv"
    data.write_text("\n".join(lines[:161]) + "\n")  # 160 molecules keep the test quick
    cols = ["aromatic", "nitrogen", "halogen", "lipophilic"]
    result = recipe_run(RecipeConfig(
        task="molecule-multilabel", data=data, columns=ColumnMapping(target_cols=cols), out=tmp_path / "run", device="cpu",
        hyperparameters={"epochs": 2, "test_frac": 0.25}, explain_samples=3, profile="distilled",
        profile_options={},
    ))
    assert result.metrics["target_kind"] == "multi_label"
    assert {"macro_roc_auc", "macro_pr_auc"} <= set(result.metrics["test"])
    assert result.compression is not None and result.compression.primary_metric == "macro_roc_auc"
    loaded = model_load(result.optimized_dir)
    preds = loaded.predict(["c1ccccc1Cl", "CCO"])
    assert set(preds[0]["probabilities"]) == set(cols)
    assert preds[0]["prediction"] == "(none)" or set(preds[0]["prediction"].split(";")) <= set(cols)
    prep = result.prepared
    logits = loaded.logits([r.input for r in prep.test_records])
    arrays = evaluation_arrays(prep.targets, logits, list(prep.test.labels))
    assert arrays["proba"].shape == (len(prep.test), 4)
    embeddings = json.loads((tmp_path / "run" / "explain" / "embeddings.json").read_text())
    assert all(isinstance(label, str) for label in embeddings["labels"])  # label sets, categorical
