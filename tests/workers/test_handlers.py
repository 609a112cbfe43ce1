"""The one base class of the handlers that run a leased object (``workers.leased.LeasedHandler``):
the same acquire and hard-time-limit failure for a job and a prediction, against the real database."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery.exceptions import TimeLimitExceeded

from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Artifact, Prediction
from tests.portal.factories import JobFactory
from workers.handlers import JobHandler, PredictionHandler, predict, run_job
from workers.leased import LeasedHandler

pytestmark = pytest.mark.django_db


def _prediction(tmp_path: Path) -> Prediction:
    job = JobFactory(status="succeeded")
    model = tmp_path / "model.zip"
    model.write_bytes(b"zip")
    artifact = result_services.artifact_create(job_id=job.pk, kind=Artifact.Kind.MODEL, path=model)
    return Prediction.objects.create(uid=uuid.uuid4(), job=job, owner=job.owner, model_artifact=artifact,
                                     output=Prediction.Output.FILE)


def test_both_handlers_share_one_base_and_fail_their_object_at_the_hard_time_limit(tmp_path: Path) -> None:
    assert isinstance(run_job, JobHandler) and isinstance(predict, PredictionHandler)
    assert issubclass(JobHandler, LeasedHandler) and issubclass(PredictionHandler, LeasedHandler)
    job = job_services.job_start(job_id=JobFactory(status="queued").pk, worker_hostname="w1")
    prediction = result_services.prediction_start(prediction_id=_prediction(tmp_path).pk, worker_hostname="w1")
    for handler, row in ((run_job, job), (predict, prediction)):
        handler.on_failure(TimeLimitExceeded(65), "message-id", (row.pk,), {}, "Traceback ...")
    job, prediction = Job.objects.get(pk=job.pk), Prediction.objects.get(pk=prediction.pk)
    assert job.status == "failed" and "job was killed at its hard time limit" in job.error_message
    assert prediction.status == "failed" and "prediction was killed at its hard time limit" in prediction.error_message
    # Already ended: a second report changes nothing and raises nothing.
    run_job.on_failure(TimeLimitExceeded(65), "message-id", (job.pk,), {}, "Traceback ...")
    assert Job.objects.get(pk=job.pk).error_message == job.error_message


def test_a_delivery_that_finds_its_object_taken_does_nothing(tmp_path: Path) -> None:
    prediction = result_services.prediction_start(prediction_id=_prediction(tmp_path).pk, worker_hostname="w1")
    ran = []
    assert predict.run_leased(prediction.pk, ran.append) == "running"
    assert predict.run_leased(prediction.pk + 1000, ran.append) == "missing"
    assert not ran and Prediction.objects.get(pk=prediction.pk).attempts == 1
