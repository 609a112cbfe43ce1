"""Periodic sweeps on the real stack: they run on the short queue while every training worker is busy,
and beats that come faster than a sweep is taken leave one message per sweep, not a pile."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from portal.config.celery import QUEUE_SHORT, SWEEP_INTERVALS_S, app
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import MetricPoint
from tests.portal.factories import JobFactory
from tests.workers.conftest import wait_for
from workers.beat import SweepScheduler

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _waiting_sweeps(client: redis.Redis) -> list[dict]:
    """Headers of the messages waiting on this run's `short` queue (its priority lists included)."""
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    headers = []
    for key in client.scan_iter(match=f"{prefix}{QUEUE_SHORT}*"):
        if client.type(key) == b"list":
            headers += [json.loads(raw)["headers"] for raw in client.lrange(key, 0, -1)]
    return headers


def _runs(worker, task_name: str) -> int:  # noqa: ANN001
    """How many times the worker finished this task (Celery logs "Task <name>[<id>] succeeded in ...")."""
    return sum(1 for line in worker.lines if f"Task {task_name}[" in line and " succeeded in " in line)


def test_sweeps_not_blocked_by_training_nor_piled_up(start_worker, dna_dataset, broker, tmp_path: Path) -> None:  # noqa: ANN001
    training = start_worker(queues="cpu")
    dataset = dna_dataset(n=800, length=100)
    long_job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification",
                                       preset="tiny", hyperparameters={"epochs": 50, "patience": 0})
    wait_for(lambda: MetricPoint.objects.filter(job=long_job, split="train").exists(), 180, "training to start", training)
    assert Job.objects.get(pk=long_job.pk).worker_hostname.startswith(training.name)
    short = start_worker(queues=QUEUE_SHORT, concurrency=2)
    # A job whose worker vanished two hours ago with no attempts left: the requeue sweep fails it.
    lost = JobFactory(owner=dataset.owner, lab=dataset.lab, dataset=dataset, status=S.RUNNING, attempts=3,
                      max_attempts=3, heartbeat_at=timezone.now() - timedelta(hours=2))
    scheduler = SweepScheduler(app=app, schedule_filename=str(tmp_path / "beat"))
    try:
        entries = [e for e in scheduler.schedule.values() if e.task in SWEEP_INTERVALS_S]
        assert len(entries) == len(SWEEP_INTERVALS_S)
        requeue = next(e for e in entries if e.task == "workers.requeue_lost_jobs")
        sent = time.time()
        scheduler.apply_entry(requeue)
        wait_for(lambda: Job.objects.get(pk=lost.pk).status != S.RUNNING, 30, "the requeue sweep", short)
        took = time.time() - sent
        assert Job.objects.get(pk=lost.pk).status == S.FAILED
        # The sweep did not wait for the training job: that one is still running.
        assert Job.objects.get(pk=long_job.pk).status == S.RUNNING, f"the sweep took {took:.1f} s"

        # No short worker listens (the training worker is busy): five beats of every sweep leave one
        # message of each, and each carries an expiry.
        short.stop()
        for _ in range(5):
            for entry in entries:
                scheduler.apply_entry(entry)
        waiting = _waiting_sweeps(broker)
        assert sorted(h["task"] for h in waiting) == sorted(SWEEP_INTERVALS_S), waiting
        assert all(h.get("expires") for h in waiting)

        # A short worker takes them; a started sweep lets the next beat send that sweep again.
        again = start_worker(queues=QUEUE_SHORT)
        for name in SWEEP_INTERVALS_S:
            wait_for(lambda name=name: _runs(again, name) == 1, 60, f"{name} to run once", again)
        assert _waiting_sweeps(broker) == []
        for entry in entries:
            scheduler.apply_entry(entry)
        for name in SWEEP_INTERVALS_S:
            wait_for(lambda name=name: _runs(again, name) == 2, 60, f"{name} to run a second time", again)
        assert Job.objects.get(pk=long_job.pk).status == S.RUNNING
    finally:
        scheduler.close()
        job_services.job_cancel(job_id=long_job.pk, user=long_job.owner)
