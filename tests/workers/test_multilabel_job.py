"""A multi-label job end to end through the API, real Celery workers, Redis and PostgreSQL: a table
with three 1/0 label columns (one with missing cells) uploaded with its task and label columns,
validated by a worker, trained by a worker, its metrics read back through the API, records predicted
through the API, and the dashboards drawing its dataset, evaluation and embeddings."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from django.core.files.base import ContentFile

from portal.datasets.models import Dataset
from portal.jobs.models import Job
from portal.results.models import Artifact
from tests.portal.api.conftest import token_client
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
LABELS = ["y1", "y2", "y3"]


def _table(n: int = 300) -> bytes:
    rng = random.Random(5)
    rows = ["x1,x2,x3,x4,y1,y2,y3"]
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(4)]
        y3 = "" if rng.random() < 0.05 else str(int(x[3] > 0.5))
        rows.append(",".join(f"{v:.4f}" for v in x) + f",{int(x[0] > 0)},{int(x[1] + x[2] > 0)},{y3}")
    return ("\n".join(rows) + "\n").encode()


def test_multilabel_job_through_the_api_the_worker_and_the_dashboards(start_worker) -> None:  # noqa: ANN001
    from portal.dashboards import dataset_explorer, embeddings, evaluation

    m = MembershipFactory()
    client = token_client(m.user)
    worker = start_worker()
    mapping = json.dumps({"target_cols": LABELS, "task": "tabular-multilabel"})
    up = client.post("/api/v1/datasets/", {"file": ContentFile(_table(), name="panel.csv"), "name": "panel",
                                           "lab": m.lab.slug, "modality": "tabular", "mapping": mapping},
                     format="multipart")
    assert up.status_code == 201, up.json()
    pk = up.json()["id"]
    wait_for(lambda: Dataset.objects.get(pk=pk).status in (Dataset.Status.READY, Dataset.Status.INVALID), 300,
             "validation", worker)
    dataset = Dataset.objects.get(pk=pk)
    assert dataset.status == Dataset.Status.READY, dataset.validation_report
    target = dataset.validation_report["stats"]["target"]
    assert target["kind"] == "multi_label" and set(target["classes"]) == set(LABELS)
    assert target["labels"]["y3"]["missing"] > 0

    made = client.post("/api/v1/jobs/", {"dataset": pk, "task": "tabular-multilabel", "preset": "tiny",
                                         "hyperparameters": {"epochs": 4, "patience": 0}}, format="json")
    assert made.status_code == 201, made.json()
    job_id = made.json()["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).is_finished, 600, "the job to finish", worker)
    job = Job.objects.get(pk=job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback

    metrics = client.get(f"/api/v1/jobs/{job_id}/metrics/").json()["baseline"]
    assert metrics["macro_roc_auc"] > 0.7, metrics
    assert {"roc_auc_t0", "roc_auc_t1", "roc_auc_t2", "macro_pr_auc"} <= set(metrics)
    evaluation_artifact = Artifact.objects.get(job=job, kind="predictions", file__endswith="evaluation.npz")
    assert evaluation_artifact.metadata["kind"] == "multi_label"
    assert evaluation_artifact.metadata["target_cols"] == LABELS
    with Artifact.objects.get(job=job, kind="predictions", file__endswith=".csv").file.open("rb") as fh:
        assert fh.readline().startswith(b"id,line,label,prediction")

    # Predictions through the API: a probability per label.
    records = [{"id": "high", "input": {"x1": 2.0, "x2": 1.5, "x3": 1.5, "x4": 2.0}},
               {"id": "low", "input": {"x1": -2.0, "x2": -1.5, "x3": -1.5, "x4": -2.0}}]
    asked = client.post(f"/api/v1/jobs/{job_id}/predict/", {"records": records}, format="json")
    assert asked.status_code in (200, 201, 202), asked.json()
    url = asked.json()["url"]

    def finished() -> dict | None:
        body = client.get(url).json()
        return body if body["status"] in ("succeeded", "failed") else None

    body = wait_for(finished, 180, "the prediction", worker)
    assert body["status"] == "succeeded", body
    predictions = body["predictions"]
    assert set(predictions[0]["probabilities"]) == set(LABELS)
    assert predictions[0]["probabilities"]["y1"] > predictions[1]["probabilities"]["y1"]

    # The dashboards: the label balance, per-label curves, embeddings coloured by label set.
    balance = dataset_explorer.class_figure(dataset)
    assert sorted(balance.data[0].x) == sorted(LABELS)
    result = evaluation.evaluate(job)
    assert result.shown == {evaluation.ROC, evaluation.PR, evaluation.CALIBRATION}
    names = [t.name for t in result.figures[evaluation.ROC].data]
    assert sum(any(f": {label} " in n for n in names) for label in LABELS) == 3, names
    assert result.summary[0]["roc_auc"] == pytest.approx(metrics["macro_roc_auc"], abs=0.02)
    assert evaluation.target_options(job) == []
    data = embeddings.embedding_data(job, "pca")
    assert data is not None and data.kind == "multi_label"
    how, values, _ = embeddings.colour_values(data, "label", np.arange(min(5, data.n)))
    assert how == "categorical" and all(isinstance(v, str) for v in values)
    how, _, _ = embeddings.colour_values(data, "error", np.arange(min(5, data.n)))
    assert how == "categorical"
