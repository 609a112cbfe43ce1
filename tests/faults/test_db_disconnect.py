"""A dropped database connection (failover, pooler restart) while a real worker trains: the worker
reconnects and retries its writes, the job ends succeeded on its first attempt, and every metric point
is stored exactly once."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, MetricPoint
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _terminate_other_connections() -> int:
    """What an administrator or a failover does: end every other session of the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _status(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def test_db_disconnect_while_training_job_succeeds_with_every_metric_point(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset(n=600, length=80)
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 4, "patience": 0})
    # Twice: once in the middle of the first epoch (the heartbeat thread's and the training thread's
    # connections both die), once after the first checkpoint.
    wait_for(lambda: MetricPoint.objects.filter(job=job, split="train").exists(), 180, "training to start", worker)
    first = _terminate_other_connections()
    wait_for(lambda: Artifact.objects.filter(job=job, kind="checkpoint").exists() or _status(job) != S.RUNNING,
             240, "the first checkpoint", worker)
    job.refresh_from_db()
    assert job.status == S.RUNNING, f"the first cut ended the job: {job.status} {job.error_message}"
    # The worker holds a connection only while it writes (between beats it may hold none): cut the
    # next one that appears.
    deadline, second = time.time() + 60, 0
    while not second and time.time() < deadline and _status(job) == S.RUNNING:
        second = _terminate_other_connections()
        time.sleep(0.05)
    assert first >= 1 and second >= 1  # the worker's connections were there to be cut
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED, S.CANCELLED), 300, "the job to end", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    assert job.attempts == 1  # never failed, never requeued: the outage was not the job's error
    assert "database error" in worker.output()  # the worker did meet the dropped connection and retried
    # Every training step has exactly one loss point: the failed flush lost none, the retry doubled none.
    steps = list(MetricPoint.objects.filter(job=job, split="train", name="loss").order_by("step")
                 .values_list("step", flat=True))
    assert steps == list(range(1, job.step + 1)), (len(steps), job.step)
    assert MetricPoint.objects.filter(job=job, split="val", name="roc_auc").count() == 4  # one per epoch
    assert Artifact.objects.filter(job=job, kind="model").count() == 1
