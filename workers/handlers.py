"""Celery handlers: thin functions that load ids and call services (HackSoft / Galaxy style).

"Handler" is a Celery task function (the word "task" is kept for the catalog's tasks). Handler names
come from ``portal.config.celery`` so producer and consumer cannot drift apart. The two handlers that
run a leased object, ``run_job`` and ``predict``, share one base class (``workers.leased.LeasedHandler``):
acquire the lease, run, stop when the lease is lost, fail at the hard time limit, and the sweeps that
requeue lost leases and send pending messages.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings

import torch
from celery import Task
from celery.signals import celeryd_after_setup, worker_ready

from portal.config.celery import (
    HANDLER_DISPATCH_PENDING_DATASETS, HANDLER_DISPATCH_PENDING_JOBS, HANDLER_PREDICT, HANDLER_REQUEUE_LOST_JOBS,
    HANDLER_RUN_JOB, HANDLER_SWEEP_PREDICTIONS, HANDLER_VALIDATE_DATASET, QUEUE_CPU, QUEUE_GPU, QUEUE_PREDICT,
    QUEUE_SHORT, app, job_queue,
)
from portal.datasets import services as dataset_services
from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Prediction
from workers.broker import broker_epoch_store, broker_restart_seen, sweep_release
from workers.leased import LeasedHandler
from workers.predict import prediction_run
from workers import runner
from workers.runner import job_run_safely  # loads torch: the worker parent imports it once, children share it
from workers.validation import dataset_validate_run

log = logging.getLogger(__name__)


class JobHandler(LeasedHandler):
    """``run_job``'s base: a job's lease, through ``portal.jobs.services``."""

    model = Job
    lease = job_services.LEASE
    transition_error = job_services.JobTransitionError

    def acquire(self, pk: int, worker_hostname: str) -> Job:
        job_services.job_start(job_id=pk, worker_hostname=worker_hostname)
        return Job.objects.select_related("dataset").get(pk=pk)

    def fail(self, pk: int, message: str, traceback: str) -> None:
        job_services.job_fail(job_id=pk, message=message, traceback=traceback)

    def requeue_lost_since(self, stale_before: datetime) -> dict[str, list[int]]:
        return job_services.job_sweep_lost(stale_before=stale_before)

    def dispatch(self, *, min_age: timedelta, resend_after: timedelta, exclude: list[int]) -> list[int]:
        return job_services.job_dispatch_pending(min_age=min_age, resend_after=resend_after, exclude=exclude)


class PredictionHandler(LeasedHandler):
    """``predict``'s base: a prediction's lease, through ``portal.results.services``."""

    model = Prediction
    lease = result_services.PREDICTION_LEASE
    transition_error = result_services.PredictionTransitionError

    def acquire(self, pk: int, worker_hostname: str) -> Prediction:
        return result_services.prediction_start(prediction_id=pk, worker_hostname=worker_hostname)

    def fail(self, pk: int, message: str, traceback: str) -> None:
        result_services.prediction_fail(prediction_id=pk, message=message)

    def requeue_lost_since(self, stale_before: datetime) -> dict[str, list[int]]:
        return result_services.prediction_sweep_lost(stale_before=stale_before)

    def dispatch(self, *, min_age: timedelta, resend_after: timedelta, exclude: list[int]) -> list[int]:
        return result_services.prediction_dispatch_pending(min_age=min_age, resend_after=resend_after, exclude=exclude)


def multi_gpu_queue(gpu_count: int) -> str:
    """Where a job asking for `gpu_count` GPUs waits for a worker owning that many (`gpu-x4`)."""
    return job_queue("gpu", gpu_count)


def _pass_on_if_too_big(handler: Task, job_id: int) -> str | None:
    """A queued job asking for more GPUs than LABFORMER_WORKER_GPUS is sent on to its `gpu-x<N>`
    queue, unstarted (submission sends such jobs there directly; this catches a message that reached
    `gpu` anyway, e.g. one sent before that routing existed), with the same time limits and priority; returns None when the job fits here."""
    row = Job.objects.filter(pk=job_id).values_list("status", "device", "gpu_count").first()
    if row is None or row[0] != Job.Status.QUEUED or row[1] != Job.Device.GPU:
        return None  # job_start below tells the rest
    gpus, owned = row[2], settings.LABFORMER_WORKER_GPUS
    if gpus <= owned:
        return None
    hard, soft = handler.request.timelimit or (None, None)
    queue = multi_gpu_queue(gpus)
    app.send_task(HANDLER_RUN_JOB, args=[job_id], queue=queue,
                  priority=(handler.request.delivery_info or {}).get("priority"),
                  soft_time_limit=soft, time_limit=hard)
    log.info("job %s asks for %d GPUs, this worker has %d: passed on to queue %s", job_id, gpus, owned, queue)
    return "passed on"


@app.task(name=HANDLER_RUN_JOB, bind=True, base=JobHandler)
def run_job(self: JobHandler, job_id: int) -> str:
    """Start the job (exactly one delivery wins) and run it; a duplicate delivery does nothing."""
    passed_on = _pass_on_if_too_big(self, job_id)
    if passed_on:
        return passed_on
    return self.run_leased(job_id, lambda job: job_run_safely(job=job))


@app.task(name=HANDLER_REQUEUE_LOST_JOBS)
def requeue_lost_jobs() -> list[int]:
    """Move running jobs whose heartbeat expired back to queued (or to failed when no attempts remain)."""
    sweep_release(HANDLER_REQUEUE_LOST_JOBS)
    moved = run_job.requeue_lost()
    return moved["requeued"] + moved["failed"]


@app.task(name=HANDLER_DISPATCH_PENDING_JOBS)
def dispatch_pending_jobs() -> list[int]:
    """Send queued jobs whose message never reached the broker (it was down at submission), and send
    everything still waiting again when the broker lost its messages (workers/broker.py)."""
    sweep_release(HANDLER_DISPATCH_PENDING_JOBS)
    restarted = broker_restart_seen()
    if restarted is None:
        return run_job.dispatch_pending()
    sent = broker_resend_all()
    broker_epoch_store(restarted)
    return sent


def broker_resend_all() -> list[int]:
    """Send every queued job, queued prediction and dataset waiting for validation again; returns the
    jobs. Duplicates are harmless: one delivery starts each, the others find it started."""
    sent = run_job.dispatch_pending(everything=True)
    predictions = predict.dispatch_pending(everything=True)
    # `uploaded`: never started (a started validation runs on in its worker whatever the broker lost).
    datasets = list(Dataset.objects.filter(status=Dataset.Status.UPLOADED).order_by("created_at")[:500])
    for dataset in datasets:
        dataset_services.dataset_enqueue_validation(dataset=dataset)
    log.warning("the broker restarted or lost its data: sent %d jobs, %d predictions and %d validations again",
                len(sent), len(predictions), len(datasets))
    return sent


@app.task(name=HANDLER_VALIDATE_DATASET)
def validate_dataset(dataset_id: int) -> str | None:
    """Validate an uploaded dataset and store its canonical copy (ends ready or invalid, never validating)."""
    return dataset_validate_run(dataset_id=dataset_id)


@app.task(name=HANDLER_DISPATCH_PENDING_DATASETS)
def dispatch_pending_datasets() -> dict[str, list]:
    """Send validations whose message never reached the broker; remove abandoned upload staging."""
    sweep_release(HANDLER_DISPATCH_PENDING_DATASETS)
    return dataset_services.dataset_sweep(
        min_age=timedelta(seconds=10), resend_after=timedelta(seconds=settings.LABFORMER_REDISPATCH_AFTER),
        staging_max_age=timedelta(seconds=settings.LABFORMER_UPLOAD_STAGING_MAX_AGE),
    )


@celeryd_after_setup.connect
def serve_short_queue(sender: str, instance, **kwargs) -> None:  # noqa: ANN001
    """A worker serving `cpu` also takes short work (validation, predictions, sweeps) when idle, so a
    deployment with CPU workers only strands nothing; a worker busy with a job holds no other message
    (prefetch 1, late ack), which is why a dedicated `-Q short` worker is what keeps short work fast.
    Workers serving `short` also drain the old `predict` queue. GPU-only workers stay on GPU jobs."""
    queues = instance.app.amqp.queues
    if QUEUE_CPU in queues.consume_from:
        queues.select_add(QUEUE_SHORT)
    if QUEUE_SHORT in queues.consume_from:
        queues.select_add(QUEUE_PREDICT)


@celeryd_after_setup.connect
def share_cores_among_pool(sender: str, instance, **kwargs) -> None:  # noqa: ANN001
    """Tell the runner how many pool processes may train at once (-c), before the pool forks them, so
    each job's torch threads take its share of the worker's cores (mlcore.threads)."""
    runner.pool_processes = max(1, int(getattr(instance, "concurrency", 1) or 1))


@celeryd_after_setup.connect
def serve_multi_gpu_queues(sender: str, instance, **kwargs) -> None:  # noqa: ANN001
    """A `gpu` worker owning G GPUs (LABFORMER_WORKER_GPUS) also consumes `gpu-x2` ... `gpu-xG`: the jobs
    asking for 2 to G GPUs that a smaller worker took from `gpu` and passed on."""
    queues = instance.app.amqp.queues
    if QUEUE_GPU in queues.consume_from:
        for gpus in range(2, settings.LABFORMER_WORKER_GPUS + 1):
            queues.select_add(multi_gpu_queue(gpus))


@worker_ready.connect
def register_worker(sender, **kwargs) -> None:  # noqa: ANN001 - celery's consumer
    """Record this worker and its queues (portal.jobs.models.WorkerSeen): submission refuses a GPU job
    when no worker serving `gpu` has ever started. A worker that cannot reach the database still runs."""
    queues = list(sender.app.amqp.queues.consume_from)
    # The GPUs it can really use: `make demo`'s one worker serves `gpu` on machines without one, and a
    # GPU job sent there could never succeed. device_count() asks NVML first, so no CUDA context is
    # made in this parent process before the pool forks.
    # A rehearsal worker (LABFORMER_DDP_DEVICE=cpu: its ranks run on the CPU with gloo) runs GPU-queue jobs
    # for as many ranks as it is told to own.
    usable = settings.LABFORMER_WORKER_GPUS if settings.LABFORMER_DDP_DEVICE == "cpu" else torch.cuda.device_count()
    gpus = min(settings.LABFORMER_WORKER_GPUS, usable) if QUEUE_GPU in queues else 0
    try:
        job_services.worker_seen_record(hostname=sender.hostname, queues=queues, gpus=gpus)
    except Exception as exc:  # noqa: BLE001 - registration is advisory; serving jobs is what matters
        log.warning("could not record worker %s: %s", sender.hostname, exc)


@app.task(name=HANDLER_PREDICT, bind=True, base=PredictionHandler)
def predict(self: PredictionHandler, prediction_id: int) -> str:
    """Predict new records with a finished job's model; a duplicate delivery does nothing."""
    return self.run_leased(prediction_id, prediction_run)


@app.task(name=HANDLER_SWEEP_PREDICTIONS)
def sweep_predictions() -> dict[str, list[int]]:
    """Requeue predictions whose worker was lost and send those whose message never reached a worker."""
    sweep_release(HANDLER_SWEEP_PREDICTIONS)
    moved = predict.requeue_lost()
    moved["sent"] = predict.dispatch_pending(exclude=moved["requeued"])
    return moved
