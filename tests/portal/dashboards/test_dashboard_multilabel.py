"""The dashboards on a multi-label job and dataset, from the catalog metadata alone: per-label ROC and
precision-recall curves with their mean, calibration over every known label, missing labels left out;
the label balance of the dataset page; embeddings coloured by the predicted label set."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mlcore.data import TargetEncoder
from mlcore.explain import evaluation_arrays
from portal.dashboards import dataset_explorer
from portal.dashboards import evaluation as ev
from portal.dashboards.common import is_empty_figure
from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.services import artifact_create
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db
LABELS = ["toxic", "active", "soluble"]


def test_evaluation_draws_a_curve_per_label_and_leaves_missing_labels_out(tmp_path) -> None:
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED, task_key="molecule-multilabel")
    targets = TargetEncoder.fit("multi_label", LABELS, [["1", "0", "1"]])
    rng = np.random.default_rng(0)
    y = (rng.random((40, 3)) < 0.5).astype(float)
    y[::7, 2] = np.nan  # missing labels
    logits = y * 1.5 + rng.standard_normal((40, 3))
    logits[::7, 2] = 40.0  # a confident score on a missing label must not count
    arrays = evaluation_arrays(targets, list(logits), list(y))
    np.savez_compressed(tmp_path / "evaluation.npz", **arrays)
    artifact_create(job_id=job.pk, kind=Artifact.Kind.PREDICTIONS, path=tmp_path / "evaluation.npz",
                    metadata={"kind": "multi_label", "variant": "baseline", "target_cols": LABELS, "n": 40})
    result = ev.evaluate(job)
    assert result.shown == {ev.ROC, ev.PR, ev.CALIBRATION}
    assert is_empty_figure(result.figures[ev.CONFUSION]) and is_empty_figure(result.figures[ev.PARITY])
    names = [t.name.split(" (")[0] for t in result.figures[ev.ROC].data]
    assert names == [f"Baseline: {label}" for label in LABELS] + ["chance"]
    proba = 1 / (1 + np.exp(-logits))
    rocs, prs = [], []
    for k in range(3):
        known = ~np.isnan(y[:, k])
        rocs.append(roc_auc_score(y[known, k], proba[known, k]))
        prs.append(average_precision_score(y[known, k], proba[known, k]))
    row = result.summary[0]
    assert math.isclose(row["roc_auc"], float(np.mean(rocs)), rel_tol=1e-5)
    assert math.isclose(row["pr_auc"], float(np.mean(prs)), rel_tol=1e-5)
    known = ~np.isnan(y)
    assert math.isclose(row["accuracy"], float(((proba[known] >= 0.5) == (y[known] == 1)).mean()))
    assert "every label" in result.figures[ev.CALIBRATION].layout.xaxis.title.text
    assert ev.target_options(job) == []  # one figure for all labels, no column to choose


def test_dataset_page_draws_the_label_balance() -> None:
    dataset = DatasetFactory(modality="smiles", validation_report={"stats": {"target": {
        "kind": "multi_label", "n_labels": 2, "classes": {"toxic": 30, "active": 12},
        "labels": {"toxic": {"positives": 30, "negatives": 70, "missing": 3},
                   "active": {"positives": 12, "negatives": 90, "missing": 1}}}}})
    fig = dataset_explorer.class_figure(dataset)
    assert list(fig.data[0].x) == ["toxic", "active"] and list(fig.data[0].y) == [30, 12]
    assert fig.layout.yaxis.title.text == "Records (count)"
    assert "class balance" in str(dataset_explorer.target_figure(dataset, None).layout.annotations[0].text)
