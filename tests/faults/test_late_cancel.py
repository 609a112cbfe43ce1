"""A cancel that arrives after the last training step, while the run evaluates, explains, profiles
and stores its results: the API answers ``cancel_requested: true``, and that answer holds — the job
ends ``cancelled`` (not ``succeeded``), with what it stored so far still attached and downloadable. The decision is explained
at ``portal.jobs.services.job_succeed``. And the periodic sweep of work folders."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from portal.accounts.services import api_token_create
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, Result
from tests.workers.conftest import wait_for
from workers.workdirs import work_dirs_sweep

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def test_late_cancel_after_the_last_step_ends_cancelled_with_artifacts_kept(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset(n=600, length=80)
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 2, "patience": 0})
    # The phase after training is written the moment it starts: freeze the worker right there, so the
    # cancel lands after the last step and before the job can end (the recipe writes all its outputs,
    # then the worker stores what the run's manifest lists: a few seconds here).
    wait_for(lambda: Job.objects.get(pk=job.pk).phase in ("evaluating", "explaining", "optimizing"), 240,
             "training to end", worker)
    os.killpg(worker.proc.pid, signal.SIGSTOP)
    try:
        assert Job.objects.get(pk=job.pk).status == S.RUNNING
        client = APIClient()
        _, secret = api_token_create(user=dataset.owner, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        answer = client.post(f"/api/v1/jobs/{job.pk}/cancel/")
        assert answer.status_code == 200, answer.content
        assert answer.json()["cancel_requested"] is True and answer.json()["status"] == S.RUNNING
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)
    wait_for(lambda: Job.objects.get(pk=job.pk).status != S.RUNNING, 120, "the job to end", worker)
    job.refresh_from_db()
    assert job.status == S.CANCELLED, (job.status, job.error_message)
    assert job.finished_at is not None and job.attempts == 1
    # What was stored before the cancel stays reachable (the last epoch's checkpoint, and its download
    # works); no result is recorded for a cancelled job and nothing of the run after the cancel is stored.
    checkpoint = Artifact.objects.get(job=job, kind="checkpoint")
    download = client.get(f"/api/v1/jobs/{job.pk}/artifacts/{checkpoint.pk}/download/")
    assert download.status_code == 200 and len(b"".join(download.streaming_content)) == checkpoint.size_bytes
    assert not Artifact.objects.filter(job=job, kind__in=["report", "model"]).exists()
    assert not Result.objects.filter(job=job).exists()
    assert worker.alive


def test_work_folders_of_finished_jobs_and_stale_attempts_are_swept(tmp_path: Path, dna_dataset) -> None:  # noqa: ANN001
    """What each worker runs before an attempt: keep only the folders of attempts that hold their job."""
    dataset = dna_dataset()

    def job(status: str, attempts: int) -> Job:
        return Job.objects.create(owner=dataset.owner, lab=dataset.lab, dataset=dataset, task_key="dna-classification",
                                  profile_key="baseline", status=status, attempts=attempts)

    running, requeued, done = job(S.RUNNING, 2), job(S.QUEUED, 1), job(S.SUCCEEDED, 1)
    folders = {name: tmp_path / name for name in (
        f"job-{running.pk}-a2-x1",    # the attempt running now: kept
        f"job-{running.pk}-a1-x2",    # its killed first attempt
        f"job-{requeued.pk}-a1-x3",   # killed, job waiting for attempt 2
        f"job-{done.pk}-a1-x4",       # finished but never cleaned (its worker died at the very end)
        "job-999999-a1-x5",           # the job was deleted
        "models",                     # not a work folder: the predict model cache
    )}
    for path in folders.values():
        (path / "checkpoints").mkdir(parents=True)
    removed = work_dirs_sweep(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        [f"job-{running.pk}-a1-x2", f"job-{requeued.pk}-a1-x3", f"job-{done.pk}-a1-x4", "job-999999-a1-x5"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"job-{running.pk}-a2-x1", "models"])
