"""Jobs through real `celery worker` processes, Redis and PostgreSQL: success, worker death and
resume, duplicate delivery, cancellation, failure."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from portal.config.celery import HANDLER_REQUEUE_LOST_JOBS, HANDLER_RUN_JOB, QUEUE_CPU, QUEUE_SHORT, app
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, MetricPoint, Result
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _submit(dataset, **hyper) -> Job:  # noqa: ANN001
    return job_services.job_submit(
        user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
        hyperparameters={"epochs": 3, "patience": 0, **hyper},
    )


def _status(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def test_worker_runs_a_submitted_job_to_succeeded(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    job = _submit(dna_dataset())
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 180, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    assert job.worker_hostname.startswith("test-") and job.attempts == 1 and job.progress == 1.0
    kinds = set(Artifact.objects.filter(job=job).values_list("kind", flat=True))
    assert {"checkpoint", "model", "predictions", "attention", "embeddings", "report", "log"} <= kinds
    result = Result.objects.get(job=job)
    assert "roc_auc" in result.baseline_metrics
    env = result.environment  # where the worker trained it
    assert env["device"] == "cpu" and env["precision"] == "fp32" and env["torch"] and env["world_size"] == 1
    steps = list(MetricPoint.objects.filter(job=job, split="train", name="loss").values_list("step", flat=True))
    assert steps == sorted(set(steps)) and steps[0] == 1
    assert MetricPoint.objects.filter(job=job, split="val").exists()
    # Artifacts are real files in storage with the hash recorded.
    predictions = Artifact.objects.get(job=job, kind="predictions", file__endswith=".csv")
    with predictions.file.open("rb") as fh:
        assert fh.readline().startswith(b"id,line,label,prediction")
    # What the dashboards read: projections and clusters, per-record evaluation data.
    n_test = len(Artifact.objects.get(job=job, kind="embeddings", file__endswith=".npy").metadata["ids"])
    projection = Artifact.objects.get(job=job, kind="embeddings", file__endswith="projection.npz")
    assert projection.metadata["projection"]["n"] == n_test and projection.metadata["projection"]["k"] >= 1
    with projection.file.open("rb") as fh, np.load(fh) as npz:
        assert npz["pca"].shape == (n_test, 2) and npz["cluster"].shape == (n_test,)
    evaluation = Artifact.objects.get(job=job, kind="predictions", file__endswith="evaluation.npz")
    assert evaluation.metadata["classes"] == ["0", "1"] and evaluation.metadata["variant"] == "baseline"
    with evaluation.file.open("rb") as fh, np.load(fh) as npz:
        accuracy = float((npz["y_true"] == npz["y_pred"]).mean())
    assert abs(accuracy - result.baseline_metrics["accuracy"]) < 1e-9
    # The job log says what happened: the data, one line per epoch, the test metrics.
    with Artifact.objects.get(job=job, kind="log").file.open("rb") as fh:
        log_text = fh.read().decode()
    assert "task dna-classification" in log_text and "epoch 1/" in log_text and "trained in" in log_text, log_text


def test_worker_killed_mid_training_job_is_requeued_and_resumes(start_worker, dna_dataset) -> None:  # noqa: ANN001
    first = start_worker()
    job = _submit(dna_dataset(n=400, length=60), epochs=4)
    # Wait for the first epoch's checkpoint to be stored, then pull the plug.
    wait_for(lambda: Artifact.objects.filter(job=job, kind="checkpoint").exists(), 180, "a checkpoint", first)
    first.kill()
    steps_first = set(MetricPoint.objects.filter(job=job, split="train", name="loss", attempt=1).values_list("step", flat=True))
    checkpoint_step = Artifact.objects.get(job=job, kind="checkpoint").metadata["step"]
    assert _status(job) == S.RUNNING  # nobody told the database: the heartbeat will expire
    second = start_worker(LABFORMER_HEARTBEAT_TIMEOUT="2")
    # The dead worker's last heartbeat must be older than the 2 s timeout before the sweep runs.
    wait_for(lambda: (timezone.now() - Job.objects.get(pk=job.pk).heartbeat_at).total_seconds() > 2.2,
             30, "the heartbeat to expire", second)
    app.send_task(HANDLER_REQUEUE_LOST_JOBS, queue=QUEUE_SHORT)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 240, "the resumed job to finish", second)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    assert job.attempts == 2
    steps_second = list(MetricPoint.objects.filter(job=job, split="train", name="loss", attempt=2)
                        .order_by("step").values_list("step", flat=True))
    # The second attempt started after the checkpoint, not from step 1, and trained fewer steps.
    assert steps_second[0] == checkpoint_step + 1
    total = MetricPoint.objects.filter(job=job, split="train", name="loss").count()
    assert len(steps_second) < total
    assert steps_first and min(steps_first) == 1
    # One point per step, never two.
    steps = list(MetricPoint.objects.filter(job=job, split="train", name="loss").values_list("step", flat=True))
    assert len(steps) == len(set(steps)) == max(steps)


def test_duplicate_delivery_of_the_same_job_runs_once(start_worker, dna_dataset) -> None:  # noqa: ANN001
    job = _submit(dna_dataset(), epochs=2)
    app.send_task(HANDLER_RUN_JOB, args=[job.pk], queue=QUEUE_CPU)  # the same message, a second time
    worker = start_worker()
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 180, "the job to finish", worker)
    # The second delivery finds the job running or finished and does nothing.
    wait_for(lambda: "not started" in worker.output(), 60, "the second delivery to be refused", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED and job.attempts == 1
    assert Artifact.objects.filter(job=job, kind="model").count() == 1


def test_cancel_a_running_job_then_the_worker_runs_the_next(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    long_job = _submit(dna_dataset(n=800, length=100), epochs=50)
    wait_for(lambda: MetricPoint.objects.filter(job=long_job, split="train").exists(), 120, "training to start", worker)
    asked = time.time()
    job_services.job_cancel(job_id=long_job.pk, user=long_job.owner)
    wait_for(lambda: _status(long_job) == S.CANCELLED, 10, "cancelled within 10 s", worker)
    assert time.time() - asked < 10
    assert worker.alive
    next_job = _submit(dna_dataset(), epochs=1)
    wait_for(lambda: _status(next_job) in (S.SUCCEEDED, S.FAILED), 180, "the next job", worker)
    assert _status(next_job) == S.SUCCEEDED


def test_a_job_whose_training_raises_fails_with_traceback_and_the_worker_survives(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    bad = dna_dataset()
    # The stored file lost its label column: the recipe raises while reading it.
    bad.original_file.save("broken.csv", ContentFile(b"sequence,other\nACGT,1\nTTTT,0\n"), save=True)
    job = _submit(bad)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 120, "the job to fail", worker)
    job.refresh_from_db()
    assert job.status == S.FAILED
    assert "label" in job.error_message and "Traceback" in job.error_traceback
    assert worker.alive
    good = _submit(dna_dataset(), epochs=1)
    wait_for(lambda: _status(good) in (S.SUCCEEDED, S.FAILED), 180, "the next job", worker)
    assert _status(good) == S.SUCCEEDED


def test_a_job_past_its_time_limit_fails_with_a_clear_message(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset(n=800, length=100)
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 50, "patience": 0}, time_limit_s=4)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 90, "the job to hit its limit", worker)
    job.refresh_from_db()
    assert job.status == S.FAILED and "time limit of 4 s" in job.error_message
    assert worker.alive


def test_redis_down_at_submission_job_stays_queued_then_is_dispatched(start_worker, dna_dataset, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """Choice documented in the README: the job is created queued even with the broker down, and
    the periodic dispatch sweep sends it once the broker is back. Nothing is lost."""
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    # Celery reads CELERY_BROKER_URL from the environment before its config; point this process at
    # a port where no broker listens yet, and drop pooled connections to the usual one.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app._after_fork()
    server = None
    try:
        dataset = dna_dataset()
        job = _submit(dataset, epochs=1)  # nothing listens on the port: the enqueue fails
        job.refresh_from_db()
        assert job.status == S.QUEUED and job.dispatched_at is None
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        worker = start_worker(CELERY_BROKER_URL=url)
        Job.objects.filter(pk=job.pk).update(created_at=job.created_at - __import__("datetime").timedelta(minutes=1))
        app.send_task("workers.dispatch_pending_jobs", queue=QUEUE_SHORT)
        wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 180, "the swept job to finish", worker)
        job.refresh_from_db()
        assert job.status == S.SUCCEEDED and job.dispatched_at is not None
    finally:
        monkeypatch.undo()
        app._after_fork()
        if server is not None:
            server.terminate()
            server.wait(timeout=10)


def test_worker_applies_an_optimization_profile_and_stores_the_report(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset()
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  profile_key="int8", hyperparameters={"epochs": 2, "patience": 0})
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 240, "the int8 job", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    result = Result.objects.get(job=job)
    report = result.compression_report
    assert report["profile"] == "int8"
    assert report["optimized"]["params"] > 0 and report["baseline"]["latency_ms_b32"] > 0
    assert "roc_auc" in result.optimized_metrics and "roc_auc" in result.baseline_metrics
    variants = sorted(a.metadata.get("variant", "baseline") for a in Artifact.objects.filter(job=job, kind="model"))
    assert variants == ["baseline", "optimized"]
    # The optimized model's per-record predictions, for the evaluation views' overlay.
    optimized = Artifact.objects.get(job=job, kind="predictions", file__endswith="evaluation-optimized.npz")
    assert optimized.metadata["variant"] == "optimized" and optimized.metadata["profile"] == "int8"
    with optimized.file.open("rb") as fh, np.load(fh) as npz:
        accuracy = float((npz["y_true"] == npz["y_pred"]).mean())
    assert abs(accuracy - result.optimized_metrics["accuracy"]) < 1e-9
