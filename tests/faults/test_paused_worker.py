"""A worker paused past the heartbeat timeout (SIGSTOP: a VM freeze, a swap storm) while another worker
takes the job over: once it wakes up, its attempt no longer holds the job's lease, every write it tries
is refused and it stops by itself, so the job runs to the end exactly once in effect. And the work
folders of attempts that never got to clean up after themselves are removed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from django.utils import timezone

from portal.config.celery import HANDLER_REQUEUE_LOST_JOBS, QUEUE_CPU, app
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, MetricPoint, Result
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _submit(dataset, epochs: int) -> Job:  # noqa: ANN001
    return job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                   hyperparameters={"epochs": epochs, "patience": 0})


def _row(job: Job) -> tuple[str, int]:
    return Job.objects.values_list("status", "attempts").get(pk=job.pk)


def _take_over(job: Job, worker) -> None:  # noqa: ANN001
    """Wait for the lost attempt's heartbeat to expire (2 s for the second worker), then sweep until
    the job is requeued and a second attempt runs it."""
    wait_for(lambda: (timezone.now() - Job.objects.get(pk=job.pk).heartbeat_at).total_seconds() > 2.5,
             30, "the heartbeat to expire", worker)

    def second_attempt_running() -> bool:
        if _row(job)[1] >= 2:  # attempt 2 started (on an idle machine it may already have finished)
            return True
        app.send_task(HANDLER_REQUEUE_LOST_JOBS, queue=QUEUE_CPU)
        time.sleep(3)
        return False

    wait_for(second_attempt_running, 120, "attempt 2 to start", worker)


def test_paused_worker_stale_attempt_is_fenced_and_stops(start_worker, dna_dataset) -> None:  # noqa: ANN001
    first = start_worker()
    job = _submit(dna_dataset(n=600, length=80), epochs=4)
    wait_for(lambda: Artifact.objects.filter(job=job, kind="checkpoint").exists(), 240, "a checkpoint", first)
    os.killpg(first.proc.pid, signal.SIGSTOP)  # the whole worker: parent, pool process, heartbeat thread
    try:
        second = start_worker(LABFORMER_HEARTBEAT_TIMEOUT="2")
        _take_over(job, second)
        wait_for(lambda: MetricPoint.objects.filter(job=job, attempt=2).exists(), 120, "attempt 2 to train", second)
        points_of_attempt_1 = MetricPoint.objects.filter(job=job, attempt=1).count()
    finally:
        os.killpg(first.proc.pid, signal.SIGCONT)
    woke = time.time()
    # The woken attempt sees its lease is gone (its heartbeat or its next write is refused) and stops.
    wait_for(lambda: f"job {job.pk} attempt 1 stopped" in first.output(), 60, "attempt 1 to stop itself", first)
    assert time.time() - woke < 30
    assert first.alive  # the worker lives on, ready for the next job
    wait_for(lambda: _row(job)[0] in (S.SUCCEEDED, S.FAILED), 300, "attempt 2 to finish", second)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED and job.attempts == 2, job.error_message + job.error_traceback
    # Exactly once in effect: one model, one report, one log (attempt 2's), one result.
    assert Artifact.objects.filter(job=job, kind="model").count() == 1
    # (two reports, each once: the run's metrics.json and the baseline profile's report.json)
    reports = list(Artifact.objects.filter(job=job, kind="report"))
    assert len(reports) == 2 and sum(1 for a in reports if a.metadata.get("profile") == "baseline") == 1, \
        [a.metadata for a in reports]
    assert [a.metadata["attempt"] for a in Artifact.objects.filter(job=job, kind="log")] == [2]
    assert Result.objects.filter(job=job).count() == 1
    # The stale attempt added no metric point after waking (attempt 2 may overwrite some of its earlier ones).
    assert MetricPoint.objects.filter(job=job, attempt=1).count() <= points_of_attempt_1
    steps = list(MetricPoint.objects.filter(job=job, split="train", name="loss").values_list("step", flat=True))
    assert len(steps) == len(set(steps)) == max(steps)
    # A result written later by the stale attempt would show here: give it time, then compare.
    result_written = Result.objects.get(job=job).updated_at
    time.sleep(5)
    assert Result.objects.get(job=job).updated_at == result_written


def _work_root(worker_env: dict[str, str]) -> Path:
    return Path(worker_env["LABFORMER_VAR_DIR"]) / "work"


def test_killed_worker_work_folder_removed_by_next_attempt(start_worker, dna_dataset, worker_env) -> None:  # noqa: ANN001
    first = start_worker()
    job = _submit(dna_dataset(n=400, length=60), epochs=3)
    wait_for(lambda: Artifact.objects.filter(job=job, kind="checkpoint").exists(), 240, "a checkpoint", first)
    first.kill()  # no chance to clean up: its folder (dataset copy, checkpoints) stays behind
    left = list(_work_root(worker_env).glob(f"job-{job.pk}-a1-*"))
    assert left and (left[0] / "checkpoints").is_dir()
    second = start_worker(LABFORMER_HEARTBEAT_TIMEOUT="2")
    _take_over(job, second)
    wait_for(lambda: not left[0].exists(), 60, "attempt 2 to remove attempt 1's folder", second)
    wait_for(lambda: _row(job)[0] in (S.SUCCEEDED, S.FAILED), 300, "attempt 2 to finish", second)
    assert _row(job) == (S.SUCCEEDED, 2)
    assert not list(_work_root(worker_env).glob(f"job-{job.pk}-*"))  # and attempt 2 removed its own
