"""Celery tasks: thin functions that load ids and call services (HackSoft / Galaxy style).

Task names come from ``portal.config.celery`` so producer and consumer cannot drift apart.
"""

from __future__ import annotations

import logging
import socket
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from celery import Task
from celery.exceptions import TimeLimitExceeded
from celery.signals import celeryd_after_setup

from portal.config.celery import (
    QUEUE_GPU, QUEUE_PREDICT, TASK_DISPATCH_PENDING_DATASETS, TASK_DISPATCH_PENDING_JOBS, TASK_PREDICT, TASK_REQUEUE_LOST_JOBS, TASK_RUN_JOB,
    TASK_SWEEP_PREDICTIONS, TASK_VALIDATE_DATASET, app, job_queue,
)
from portal.datasets import services as dataset_services
from portal.jobs import selectors as job_selectors
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Prediction
from workers.predict import prediction_run
from workers.runner import job_run_safely  # loads torch: the worker parent imports it once, children share it
from workers.validation import dataset_validate_run

log = logging.getLogger(__name__)


class JobTask(Task):
    """Fails the job when its process is killed at the hard time limit.

    The soft limit raises inside the job and is handled there; the hard limit kills the child
    process, and Celery then calls ``on_failure`` in the worker's parent process.
    """

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                job_services.job_fail(
                    job_id=int(args[0]),
                    message=f"the job was killed at its hard time limit ({exc}); it did not stop at the soft limit",
                    traceback=str(einfo),
                )
            except (job_services.JobTransitionError, Job.DoesNotExist) as transition:
                log.info("job %s: %s", args[0], transition)


def multi_gpu_queue(gpu_count: int) -> str:
    """Where a job asking for `gpu_count` GPUs waits for a worker owning that many (`gpu-x4`)."""
    return job_queue("gpu", gpu_count)


def _pass_on_if_too_big(task: Task, job_id: int) -> str | None:
    """A queued job asking for more GPUs than LABFORMER_WORKER_GPUS is sent on to its `gpu-x<N>`
    queue, unstarted (submission sends such jobs there directly; this catches a message that reached
    `gpu` anyway, e.g. one sent before that routing existed), with the same time limits and priority; returns None when the job fits here."""
    row = Job.objects.filter(pk=job_id).values_list("status", "device", "gpu_count").first()
    if row is None or row[0] != Job.Status.QUEUED or row[1] != Job.Device.GPU:
        return None  # job_start below tells the rest
    gpus, owned = row[2], settings.LABFORMER_WORKER_GPUS
    if gpus <= owned:
        return None
    hard, soft = task.request.timelimit or (None, None)
    queue = multi_gpu_queue(gpus)
    app.send_task(TASK_RUN_JOB, args=[job_id], queue=queue, priority=(task.request.delivery_info or {}).get("priority"),
                  soft_time_limit=soft, time_limit=hard)
    log.info("job %s asks for %d GPUs, this worker has %d: passed on to queue %s", job_id, gpus, owned, queue)
    return "passed on"


@app.task(name=TASK_RUN_JOB, bind=True, base=JobTask)
def run_job(self, job_id: int) -> str:  # noqa: ANN001 - bound task
    """Start the job (exactly one delivery wins) and run it; a duplicate delivery does nothing."""
    hostname = self.request.hostname or socket.gethostname()
    passed_on = _pass_on_if_too_big(self, job_id)
    if passed_on:
        return passed_on
    try:
        job_services.job_start(job_id=job_id, worker_hostname=hostname)
    except job_services.JobTransitionError as exc:
        log.info("job %s not started by %s: %s", job_id, hostname, exc)
        return exc.current
    except Job.DoesNotExist:
        log.warning("job %s no longer exists", job_id)
        return "missing"
    job = Job.objects.select_related("dataset").get(pk=job_id)
    return job_run_safely(job=job)


@app.task(name=TASK_REQUEUE_LOST_JOBS)
def requeue_lost_jobs() -> list[int]:
    """Move running jobs whose heartbeat expired back to queued (or to failed when no attempts remain)."""
    timeout = timedelta(seconds=settings.LABFORMER_HEARTBEAT_TIMEOUT)
    stale_before = timezone.now() - timeout
    moved: list[int] = []
    for job_id in job_selectors.job_list_lost_ids(timeout=timeout):
        try:
            job_services.job_requeue_lost(job_id=job_id, stale_before=stale_before)
            moved.append(job_id)
        except job_services.JobTransitionError as exc:
            # It beat, finished or was cancelled between the read and the update: nothing to do.
            log.info("job %s changed meanwhile: %s", job_id, exc)
    return moved


@app.task(name=TASK_DISPATCH_PENDING_JOBS)
def dispatch_pending_jobs() -> list[int]:
    """Send queued jobs whose message never reached the broker (it was down at submission)."""
    return job_services.job_dispatch_pending(
        min_age=timedelta(seconds=10), resend_after=timedelta(seconds=settings.LABFORMER_REDISPATCH_AFTER)
    )


@app.task(name=TASK_VALIDATE_DATASET)
def validate_dataset(dataset_id: int) -> str | None:
    """Validate an uploaded dataset and store its canonical copy (ends ready or invalid, never validating)."""
    return dataset_validate_run(dataset_id=dataset_id)


@app.task(name=TASK_DISPATCH_PENDING_DATASETS)
def dispatch_pending_datasets() -> dict[str, list]:
    """Send validations whose message never reached the broker; remove abandoned upload staging."""
    return dataset_services.dataset_sweep(
        min_age=timedelta(seconds=10), resend_after=timedelta(seconds=settings.LABFORMER_REDISPATCH_AFTER),
        staging_max_age=timedelta(seconds=settings.LABFORMER_UPLOAD_STAGING_MAX_AGE),
    )


@celeryd_after_setup.connect
def serve_predict_queue(sender: str, instance, **kwargs) -> None:  # noqa: ANN001
    """Every worker also consumes `predict`, whatever its -Q: a prediction is never stranded because no
    worker listens, and an idle training worker answers it. A worker busy with a job holds no other
    message (prefetch 1, late ack), so a dedicated `-Q predict` worker is what keeps predictions fast
    while every training worker is busy."""
    instance.app.amqp.queues.select_add(QUEUE_PREDICT)


@celeryd_after_setup.connect
def serve_multi_gpu_queues(sender: str, instance, **kwargs) -> None:  # noqa: ANN001
    """A `gpu` worker owning G GPUs (LABFORMER_WORKER_GPUS) also consumes `gpu-x2` ... `gpu-xG`: the jobs
    asking for 2 to G GPUs that a smaller worker took from `gpu` and passed on."""
    queues = instance.app.amqp.queues
    if QUEUE_GPU in queues.consume_from:
        for gpus in range(2, settings.LABFORMER_WORKER_GPUS + 1):
            queues.select_add(multi_gpu_queue(gpus))


class PredictionTask(Task):
    """Fails the prediction when its process is killed at the hard time limit (see JobTask)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                result_services.prediction_fail(prediction_id=int(args[0]), message=(
                    f"the prediction was killed at its hard time limit ({exc}); it did not stop at the soft limit"))
            except (result_services.PredictionTransitionError, Prediction.DoesNotExist) as transition:
                log.info("prediction %s: %s", args[0], transition)


@app.task(name=TASK_PREDICT, bind=True, base=PredictionTask)
def predict(self, prediction_id: int) -> str:  # noqa: ANN001 - bound task
    """Predict new records with a finished job's model; a duplicate delivery does nothing."""
    return prediction_run(prediction_id=prediction_id, worker_hostname=self.request.hostname or socket.gethostname())


@app.task(name=TASK_SWEEP_PREDICTIONS)
def sweep_predictions() -> dict[str, list[int]]:
    """Requeue predictions whose worker was lost and send those whose message never reached a worker."""
    return result_services.prediction_sweep(
        heartbeat_timeout=timedelta(seconds=settings.LABFORMER_HEARTBEAT_TIMEOUT), min_age=timedelta(seconds=10),
        resend_after=timedelta(seconds=settings.LABFORMER_REDISPATCH_AFTER),
    )
