"""The log of an attempt reaches the database while it runs, with the recipe's phase; a failed
attempt's log is kept, traceback included (real `celery worker`, Redis and PostgreSQL)."""

from __future__ import annotations

from django.core.files.base import ContentFile

import pytest

from portal.jobs import services as job_services
from portal.jobs.models import Job, JobLog
from portal.results.models import Artifact
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _row(job: Job) -> tuple[str, str, int, int]:
    return Job.objects.values_list("status", "phase", "phase_index", "phase_count").get(pk=job.pk)


def test_a_running_jobs_log_and_phase_are_in_the_database_before_it_ends(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset(n=400, length=80)
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  profile_key="int8", hyperparameters={"epochs": 6, "patience": 0})
    seen_phases: set[tuple[str, int, int]] = set()
    live_log = ""

    def running_with_a_log() -> bool:
        nonlocal live_log
        status, phase, index, count = _row(job)
        if status == S.RUNNING and phase:
            seen_phases.add((phase, index, count))
        if status != S.RUNNING:
            return status in (S.SUCCEEDED, S.FAILED)
        text = JobLog.objects.filter(job=job, attempt=1).values_list("text", flat=True).first() or ""
        stored = Artifact.objects.filter(job=job, kind=Artifact.Kind.LOG).exists()
        if "epoch 1/" in text and not stored:
            live_log = text
        return bool(live_log)

    wait_for(running_with_a_log, 240, "the running job's log in the database", worker)
    assert "task dna-classification" in live_log and "phase 2 of 5: training" in live_log, live_log
    assert ("training", 2, 5) in seen_phases, seen_phases
    wait_for(lambda: _row(job)[0] in (S.SUCCEEDED, S.FAILED), 300, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message
    # preparing, training, evaluating, explaining, optimizing: the last one stays on the row.
    assert (job.phase, job.phase_index, job.phase_count) == ("optimizing", 5, 5)
    log = JobLog.objects.get(job=job, attempt=1)
    for index, name in enumerate(["preparing", "training", "evaluating", "explaining", "optimizing"], 1):
        assert f"phase {index} of 5: {name}" in log.text, log.text
    assert log.chars_total == len(log.text) and "trained in" in log.text


def test_a_failed_attempt_keeps_its_log_with_the_traceback(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    bad = dna_dataset()
    bad.original_file.save("broken.csv", ContentFile(b"sequence,other\nACGT,1\nTTTT,0\n"), save=True)
    job = job_services.job_submit(user=bad.owner, dataset=bad, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 1})
    wait_for(lambda: _row(job)[0] in (S.SUCCEEDED, S.FAILED), 120, "the job to fail", worker)
    job.refresh_from_db()
    assert job.status == S.FAILED
    stored = Artifact.objects.get(job=job, kind=Artifact.Kind.LOG)
    assert stored.size_bytes > 0 and stored.metadata["attempt"] == 1
    with stored.file.open("rb") as fh:
        text = fh.read().decode()
    assert "attempt 1 failed" in text and "Traceback" in text and "label" in text, text
    streamed = JobLog.objects.get(job=job, attempt=1).text
    assert "Traceback" in streamed and "phase 1 of" in streamed, streamed
