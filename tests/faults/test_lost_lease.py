"""A lost lease stops the work early, for predictions as for jobs: one heartbeat reporter
(``workers.leased.LeaseReporter``) fences every beat by the attempt, and the work checks it between
units (a training step, a prediction batch). The training job's side under a real pause is in
test_paused_worker.py; here the reporter on both objects, and a real worker whose prediction is
taken over by the sweep's requeue while it predicts."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from portal.common.lease import StaleAttempt
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Artifact, MetricPoint, Prediction
from tests.portal.api.conftest import finished_job, trained_model  # noqa: F401 - fixtures reused
from tests.portal.factories import JobFactory, MembershipFactory
from tests.workers.conftest import broker, planted_motif_csv, wait_for  # noqa: F401 - broker: the requeue really sends
from workers.leased import LeaseReporter
from workers.runner import DatabaseReporter

pytestmark = pytest.mark.django_db(transaction=True)


def _running_prediction(tmp_path: Path) -> Prediction:
    job = JobFactory(status="succeeded")
    model = tmp_path / "model.zip"
    model.write_bytes(b"zip")
    artifact = result_services.artifact_create(job_id=job.pk, kind=Artifact.Kind.MODEL, path=model)
    prediction = Prediction.objects.create(uid=uuid.uuid4(), job=job, owner=job.owner, model_artifact=artifact,
                                           output=Prediction.Output.FILE)
    return result_services.prediction_start(prediction_id=prediction.pk, worker_hostname="w1")


def test_one_reporter_sees_a_lost_lease_for_a_prediction_and_for_a_job(tmp_path: Path, broker) -> None:  # noqa: ANN001
    prediction = _running_prediction(tmp_path)
    job = JobFactory(status="queued")
    job = job_services.job_start(job_id=job.pk, worker_hostname="w1")
    reporters = [
        LeaseReporter(lease=result_services.PREDICTION_LEASE, pk=prediction.pk, attempt=1, interval=0.1),
        DatabaseReporter(job_id=job.pk, attempt=1, interval=0.1),
    ]
    for reporter in reporters:
        reporter.start()
    try:
        time.sleep(0.5)
        for reporter in reporters:  # beating, lease held
            reporter.check()
            assert not reporter.should_stop() and reporter.stale is None
        # The sweep takes both over (their heartbeats look expired to it): the next beat is refused.
        later = timezone.now() + timedelta(seconds=1)
        requeued = result_services.prediction_requeue_lost(prediction_id=prediction.pk, stale_before=later)
        assert requeued.status == "queued"
        assert job_services.job_requeue_lost(job_id=job.pk, stale_before=later).status == "queued"
        for reporter in reporters:
            wait_for(lambda r=reporter: r.stale is not None, 10, f"{reporter.lease.label}'s reporter to see the loss")
            assert reporter.should_stop()
            with pytest.raises(StaleAttempt, match="no longer holds its lease"):
                reporter.check()
    finally:
        for reporter in reporters:
            LeaseReporter.stop(reporter)
    # Nothing was written for the lost attempts after the takeover: both rows are queued, unbeaten.
    assert Prediction.objects.get(pk=prediction.pk).heartbeat_at is None
    assert Job.objects.get(pk=job.pk).heartbeat_at is None
    assert not MetricPoint.objects.filter(job=job).exists()


def test_a_prediction_whose_lease_is_taken_over_stops_early_and_stores_nothing(  # noqa: ANN001
        start_worker, finished_job) -> None:
    member = MembershipFactory()
    job = finished_job(member)
    worker = start_worker()  # one pool process: attempt 2 can start only once attempt 1 has returned
    n = 20000
    prediction = result_services.prediction_create(
        user=member.user, job=job, file=ContentFile(planted_motif_csv(n, length=60), name="many.csv"),
        filename="many.csv")
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status == "running", 120, "the prediction to start",
             worker)
    # What the sweep does once it takes the heartbeat for lost: the row goes back to queued and is sent
    # again, while attempt 1 is still predicting.
    requeued = result_services.prediction_requeue_lost(prediction_id=prediction.pk,
                                                      stale_before=timezone.now() + timedelta(seconds=1))
    assert (requeued.status, requeued.attempts) == ("queued", 1)
    taken = time.monotonic()
    wait_for(lambda: f"prediction {prediction.pk} attempt 1 stopped" in worker.output(), 60,
             "attempt 1 to stop itself", worker)
    assert time.monotonic() - taken < 30
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status in ("succeeded", "failed"), 240,
             "attempt 2 to finish", worker)
    done = Prediction.objects.get(pk=prediction.pk)
    assert done.status == "succeeded" and done.attempts == 2, done.error_message
    # Attempt 1 stopped before storing anything: it never reached the end (no refused result), and the
    # only result file is attempt 2's, with every record once.
    assert "lost its claim" not in worker.output()
    files = default_storage.listdir(f"predictions/{job.pk}/{prediction.uid}")[1]
    assert [f for f in files if "predictions" in f] == [Path(done.result_file.name).name]
    with done.result_file.open("r") as fh:
        assert sum(1 for _ in fh) == n + 1
    assert worker.alive
