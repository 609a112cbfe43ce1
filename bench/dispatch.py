"""Dispatch latency and job throughput through real Celery workers, Redis and PostgreSQL.

- dispatch: submit → `running` latency with an idle worker (median and p95 over 50 jobs), measured
  as the job row's `started_at` (set by the worker's conditional UPDATE) minus the moment
  `job_submit` was called;
- throughput: jobs per minute for 200 tiny jobs (a 40-record DNA set, 1 epoch) with 2 worker processes.

Uses its own PostgreSQL database (`labformer_bench`, recreated) and Redis db 14. Prints a JSON
object as its last line: {"dispatch_median_s", "dispatch_p95_s", "jobs_per_min", ...}.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "labformer_bench"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
N_LATENCY = int(os.environ.get("BENCH_DISPATCH_JOBS", "50"))
N_THROUGHPUT = int(os.environ.get("BENCH_THROUGHPUT_JOBS", "200"))

work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
os.environ.update({
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "CELERY_BROKER_URL": BROKER,
    "MEDIA_ROOT": str(work / "media"),
    "LABFORMER_VAR_DIR": str(work / "var"),
    "DJANGO_SETTINGS_MODULE": "portal.config.settings",
    "LABFORMER_HEARTBEAT_INTERVAL": "2",
})
sys.path.insert(0, str(ROOT))


def _recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def _tiny_dna_csv(n: int = 40) -> bytes:
    rng = random.Random(0)
    rows = ["sequence,label"] + [f"{''.join(rng.choice('ACGT') for _ in range(30))},{i % 2}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def _start_workers(n: int) -> list[subprocess.Popen]:
    procs = []
    for k in range(n):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", "cpu", "-c", "1",
             "-n", f"bench{k}@%h", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"],
            cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        ))
    return procs


def _wait_workers(n: int, timeout: float = 120) -> None:
    """Poll until `n` workers answer a broadcast ping (both consume before the clock starts)."""
    from portal.config.celery import app

    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(app.control.ping(timeout=1.0)) >= n:
            return
    raise SystemExit(f"fewer than {n} workers answered within {timeout}s")


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def main() -> None:
    _recreate_database()
    import django

    django.setup()
    import redis
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.db import transaction

    from portal.accounts.services import lab_create
    from portal.datasets.services import dataset_create
    from portal.datasets.models import Dataset
    from portal.jobs.models import Job
    from portal.jobs.services import job_submit

    redis.Redis.from_url(BROKER).flushdb()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    lab = lab_create(name="Bench", owner=user)
    dataset = dataset_create(owner=user, lab=lab, name="tiny", modality="dna", file=ContentFile(_tiny_dna_csv()),
                             filename="tiny.csv", validate=False,
                             schema={"input_cols": ["sequence"], "target_cols": ["label"]})
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.READY)
    dataset.refresh_from_db()

    def submit() -> tuple[Job, float]:
        submitted = time.time()  # latency counts the whole submission: checks, INSERT, commit, enqueue
        with transaction.atomic():
            job = job_submit(user=user, dataset=dataset, task_key="dna-classification", preset="tiny",
                             hyperparameters={"epochs": 1, "batch_size": 16, "patience": 0})
        return job, submitted

    def wait_done(ids: list[int], timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not Job.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
                return
            time.sleep(0.05)
        raise SystemExit(f"jobs did not finish within {timeout}s")

    workers = _start_workers(1)
    try:
        # Warm-up: the first job pays the worker's imports.
        job, _ = submit()
        wait_done([job.pk], 300)
        latencies = []
        for _ in range(N_LATENCY):
            job, submitted = submit()
            wait_done([job.pk], 300)
            job.refresh_from_db()
            latencies.append(job.started_at.timestamp() - submitted)
        failed = Job.objects.exclude(status="succeeded").count()
    finally:
        _stop(workers)

    workers = _start_workers(2)
    try:
        _wait_workers(2)
        t0 = time.time()
        ids = [submit()[0].pk for _ in range(N_THROUGHPUT)]
        wait_done(ids, 1800)
        elapsed = time.time() - t0
        failed += Job.objects.filter(pk__in=ids).exclude(status="succeeded").count()
    finally:
        _stop(workers)

    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
    print(f"dispatch latency over {len(latencies)} jobs: median {statistics.median(latencies):.3f} s, p95 {p95:.3f} s")
    print(f"throughput: {N_THROUGHPUT} tiny jobs with 2 workers in {elapsed:.1f} s")
    print(json.dumps({
        "dispatch_median_s": round(statistics.median(latencies), 4),
        "dispatch_p95_s": round(p95, 4),
        "jobs_per_min": round(60 * N_THROUGHPUT / elapsed, 1),
        "jobs_failed": failed,
        "n_latency_jobs": len(latencies),
        "n_throughput_jobs": N_THROUGHPUT,
    }))


if __name__ == "__main__":
    main()
