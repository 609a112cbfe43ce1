"""A broker Redis restarted without persistence loses every waiting message; the queued job must still
run within a minute or two, not after LABFORMER_REDISPATCH_AFTER (30 minutes). The test runs its own
throwaway redis-server on another port, never the shared one."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from portal.config.celery import HANDLER_DISPATCH_PENDING_JOBS, QUEUE_CPU, app
from portal.jobs import services as job_services
from portal.jobs.models import Job
from tests.workers.conftest import wait_for
from workers.broker import broker_restart_seen

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _redis_server(port: int, folder: Path) -> subprocess.Popen:
    """redis-server with no persistence at all (no snapshots, no append-only file), answering PING."""
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=1)
    wait_for(lambda: _pings(client), 20, f"redis-server on port {port}")
    return server


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def _waiting(client: redis.Redis, queue: str) -> int:
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    return sum(client.llen(key) for key in client.scan_iter(match=f"{prefix}{queue}*") if client.type(key) == b"list")


def test_redis_restart_without_persistence_resends_the_queued_job(start_worker, dna_dataset, tmp_path: Path,
                                                                   monkeypatch) -> None:  # noqa: ANN001
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    server = _redis_server(port, tmp_path)
    client = redis.Redis(port=port)
    # Celery reads CELERY_BROKER_URL from the environment before its config: this process publishes
    # to the throwaway server too (pooled connections to the shared one are dropped).
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app._after_fork()
    try:
        # The short worker runs the periodic sweeps (beat embedded, as in `make demo`).
        short = start_worker(queues="short", beat=True, CELERY_BROKER_URL=url)
        app.send_task(HANDLER_DISPATCH_PENDING_JOBS)
        wait_for(lambda: client.keys("*labformer:broker-epoch"), 60, "the dispatch sweep to store the epoch", short)
        assert broker_restart_seen() is None  # nothing to resend while the server keeps running

        job = job_services.job_submit(user=(ds := dna_dataset()).owner, dataset=ds, task_key="dna-classification",
                                      preset="tiny", hyperparameters={"epochs": 1, "patience": 0})
        job.refresh_from_db()
        assert job.status == S.QUEUED and job.dispatched_at is not None
        assert _waiting(client, QUEUE_CPU) == 1  # no training worker yet: the message waits

        server.kill()
        server.wait(timeout=10)
        server = _redis_server(port, tmp_path)
        restarted = time.time()
        assert _waiting(client, QUEUE_CPU) == 0  # the restart took the message with it

        worker = start_worker(queues=QUEUE_CPU, CELERY_BROKER_URL=url)
        wait_for(lambda: Job.objects.get(pk=job.pk).status != S.QUEUED, 150, "the job to start after the restart",
                 short)
        started_after = time.time() - restarted
        wait_for(lambda: Job.objects.get(pk=job.pk).status in (S.SUCCEEDED, S.FAILED), 180, "the job", worker)
        job.refresh_from_db()
        assert job.status == S.SUCCEEDED, job.error_message
        assert started_after < 150
        assert "sent 1 jobs" in short.output() + worker.output()
    finally:
        monkeypatch.undo()
        app._after_fork()
        server.terminate()
        server.wait(timeout=10)
