"""A job that picks its target column at submission trains on it, through a real worker: a tabular
dataset uploaded without a task (so `y` was validated as a feature) trains with `y` as its target and
not as a feature."""

from __future__ import annotations

import json
import random
import zipfile

import pytest
from django.core.files.base import ContentFile

from portal.datasets.models import Dataset
from portal.datasets.services import dataset_create
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, Result
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _table(n: int = 240) -> bytes:
    rng = random.Random(11)
    rows = ["a,b,c,y"]
    for _ in range(n):
        a, b, c = (rng.gauss(0, 1) for _ in range(3))
        rows.append(f"{a:.3f},{b:.3f},{c:.3f},{int(a + b > 0)}")
    return ("\n".join(rows) + "\n").encode()


def test_a_job_trains_on_the_target_column_picked_at_submission(start_worker) -> None:  # noqa: ANN001
    m = MembershipFactory()
    dataset = dataset_create(owner=m.user, lab=m.lab, name="table", modality="tabular",
                             file=ContentFile(_table(), name="table.csv"), filename="table.csv")
    worker = start_worker()
    wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status == Dataset.Status.READY, 180, "validation", worker)
    dataset.refresh_from_db()
    assert "y" in dataset.validation_report["columns"]["input"]  # no task at upload: y is just a column
    with pytest.raises(Exception, match="no column 'label'"):  # the task's default name is not in the file
        job_services.job_submit(user=m.user, dataset=dataset, task_key="tabular-classification")
    job = job_services.job_submit(user=m.user, dataset=dataset, task_key="tabular-classification", preset="tiny",
                                  hyperparameters={"epochs": 2, "patience": 0}, target_col="y")
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 300, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback
    assert "roc_auc" in Result.objects.get(job=job).baseline_metrics  # y's two classes, learned
    assert job.config["target_cols"] == ["y"]
    # The stored model reads a, b, c and predicts y: the target is not among its features.
    model = Artifact.objects.get(job=job, kind=Artifact.Kind.MODEL, file__endswith="model.zip")
    with model.file.open("rb") as fh, zipfile.ZipFile(fh) as zf:
        columns = json.loads(zf.read("config.json"))["columns"]
    assert columns["target_cols"] == ["y"] and columns["feature_cols"] == ["a", "b", "c"], columns
