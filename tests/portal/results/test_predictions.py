"""The prediction state machine in portal.results.services: one delivery starts a prediction, a lost
attempt cannot overwrite the outcome, the sweep requeues, fails after max attempts, and resends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from portal.results import services
from portal.results.models import Artifact, Prediction
from tests.portal.factories import JobFactory
from tests.workers.conftest import broker  # noqa: F401 - fixture reused: the sweep really sends

pytestmark = pytest.mark.django_db
S = Prediction.Status


def _prediction(tmp_path: Path, **fields: object) -> Prediction:
    job = JobFactory(status="succeeded")
    model = tmp_path / "model.zip"
    model.write_bytes(b"zip")
    artifact = services.artifact_create(job_id=job.pk, kind=Artifact.Kind.MODEL, path=model)
    return Prediction.objects.create(uid=uuid.uuid4(), job=job, owner=job.owner, model_artifact=artifact,
                                     output=Prediction.Output.FILE, **fields)


def test_one_start_wins_and_a_lost_attempt_leaves_no_result(tmp_path: Path) -> None:
    prediction = _prediction(tmp_path)
    started = services.prediction_start(prediction_id=prediction.pk, worker_hostname="w1")
    assert started.status == S.RUNNING and started.attempts == 1
    with pytest.raises(services.PredictionTransitionError, match="is running"):
        services.prediction_start(prediction_id=prediction.pk, worker_hostname="w2")
    # The sweep gave attempt 1 up and attempt 2 runs: attempt 1's late result is refused and deleted.
    Prediction.objects.filter(pk=prediction.pk).update(attempts=2)
    assert not services.prediction_heartbeat(prediction_id=prediction.pk, attempt=1)
    result = tmp_path / "predictions.csv"
    result.write_text("id,line,prediction\na,2,1\n")
    with pytest.raises(services.PredictionTransitionError):
        services.prediction_succeed(prediction_id=prediction.pk, attempt=1, n_records=1, result_path=result)
    assert not default_storage.listdir(f"predictions/{prediction.job_id}/{prediction.uid}")[1]
    done = services.prediction_succeed(prediction_id=prediction.pk, attempt=2, n_records=1, result_path=result)
    assert done.status == S.SUCCEEDED and done.result_size_bytes == result.stat().st_size
    with pytest.raises(services.PredictionTransitionError, match="is succeeded"):
        services.prediction_fail(prediction_id=prediction.pk, message="late")


def test_sweep_requeues_lost_fails_exhausted_and_resends_unsent(tmp_path: Path, broker) -> None:  # noqa: ANN001
    long_ago = timezone.now() - timedelta(hours=1)
    lost = _prediction(tmp_path, status=S.RUNNING, attempts=1, heartbeat_at=long_ago, worker_hostname="gone@h")
    exhausted = _prediction(tmp_path, status=S.RUNNING, attempts=3, heartbeat_at=long_ago, worker_hostname="gone@h")
    alive = _prediction(tmp_path, status=S.RUNNING, attempts=1, heartbeat_at=timezone.now())
    unsent = _prediction(tmp_path)
    Prediction.objects.filter(pk=unsent.pk).update(created_at=long_ago)
    fresh = _prediction(tmp_path)  # its own on-commit send is still due: left alone
    moved = services.prediction_sweep(heartbeat_timeout=timedelta(minutes=5), min_age=timedelta(seconds=10),
                                      resend_after=timedelta(minutes=30))
    assert moved == {"requeued": [lost.pk], "failed": [exhausted.pk], "sent": [unsent.pk]}
    statuses = dict(Prediction.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: S.QUEUED, exhausted.pk: S.FAILED, alive.pk: S.RUNNING, unsent.pk: S.QUEUED,
                        fresh.pk: S.QUEUED}
    failed = Prediction.objects.get(pk=exhausted.pk)
    assert failed.error_code == "worker_lost" and "gone@h" in failed.error_message and "all 3 attempts" in failed.error_message
    assert Prediction.objects.get(pk=lost.pk).dispatched_at is not None  # sent again to the broker
    assert Prediction.objects.get(pk=fresh.pk).dispatched_at is None
