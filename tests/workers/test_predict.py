"""Predictions through real `celery worker` processes: with a model the runner trained (baseline and
optimized, the same numbers as the stored model loaded locally), and a prediction whose worker dies
half-way, requeued by the sweep and finished by another worker."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from mlcore.modeldir import model_load
from portal.config.celery import HANDLER_SWEEP_PREDICTIONS, QUEUE_PREDICT, QUEUE_SHORT, app
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import selectors as result_selectors
from portal.results import services as result_services
from portal.results.models import Artifact, Prediction
from tests.portal.api.conftest import finished_job, trained_model  # noqa: F401 - fixtures reused
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import planted_motif_csv, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
SEQS = ["ACGTTTGACGTCAAGGCTAACGTTAGCATCGATCGATCGATTGA", "TTTTGGGGCCCCAAAATTTTGGGGCCCCAAAATTTTGGGGCCCC"]


def _local_model(artifact: Artifact, where: Path):  # noqa: ANN202
    archive = result_services.artifact_fetch(artifact=artifact, destination=where / "model.zip")
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(where / "model")
    return model_load(where / "model")


def test_predictions_with_the_models_the_runner_trained(start_worker, dna_dataset, tmp_path: Path) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset(n=120, length=44)
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  profile_key="int8", hyperparameters={"epochs": 2, "patience": 0})
    wait_for(lambda: Job.objects.get(pk=job.pk).status in ("succeeded", "failed"), 240, "the job", worker)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message
    for variant in ("baseline", "optimized"):
        prediction = result_services.prediction_create(user=dataset.owner, job=job, variant=variant,
                                                       records=[SEQS[0], {"id": "b", "input": SEQS[1]}])
        assert prediction.output == "inline" and prediction.model_artifact.metadata.get("variant", "baseline") == variant
        done = result_selectors.prediction_wait(prediction_id=prediction.pk, timeout=120)
        assert done.status == "succeeded", (done.error_message, worker.output()[-3000:])
        assert done.worker_hostname.startswith("test-") and done.attempts == 1 and done.records is None
        expected = _local_model(prediction.model_artifact, tmp_path / variant).predict(SEQS)
        assert [p["id"] for p in done.predictions] == ["0", "b"]
        for got, want in zip(done.predictions, expected):
            assert got["prediction"] == want["prediction"]
            assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    # A second delivery of a finished prediction changes nothing; a message on the old `predict` queue
    # is still served by a worker that serves `short`.
    app.send_task("workers.predict", args=[prediction.pk], queue=QUEUE_PREDICT)
    wait_for(lambda: "not started" in worker.output(), 60, "the duplicate to be refused", worker)
    assert Prediction.objects.get(pk=prediction.pk).attempts == 1


def test_a_prediction_whose_worker_dies_is_requeued_and_finished_elsewhere(start_worker, finished_job) -> None:  # noqa: ANN001
    member = MembershipFactory()
    job = finished_job(member)
    first = start_worker()
    n = 8000
    prediction = result_services.prediction_create(
        user=member.user, job=job, file=ContentFile(planted_motif_csv(n, length=60), name="many.csv"),
        filename="many.csv")
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status == "running", 120, "the prediction to start",
             first)
    first.kill()
    assert Prediction.objects.get(pk=prediction.pk).status == "running"  # nobody told the database
    second = start_worker(LABFORMER_HEARTBEAT_TIMEOUT="2")
    wait_for(lambda: (timezone.now() - Prediction.objects.get(pk=prediction.pk).heartbeat_at).total_seconds() > 2.2,
             30, "the heartbeat to expire", second)
    app.send_task(HANDLER_SWEEP_PREDICTIONS, queue=QUEUE_SHORT)
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status in ("succeeded", "failed"), 240,
             "the requeued prediction", second)
    done = Prediction.objects.get(pk=prediction.pk)
    assert done.status == "succeeded", done.error_message
    assert done.attempts == 2 and done.worker_hostname.split("@")[0] != first.name
    with done.result_file.open("r") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == n + 1 and rows[-1][1] == str(n + 1)  # every record once, by its file line
    assert Prediction.objects.filter(result_file__isnull=False).exclude(result_file="").count() == 1
