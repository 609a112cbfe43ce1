"""The Celery app object, shared by the web process (which only enqueues) and the workers.

The portal enqueues by handler *name* through this app (``app.send_task``) so that it never imports
``workers`` and the web process never loads torch through a handler module. The names live here, in
one place; ``workers/handlers.py`` registers its functions (Celery tasks, called handlers here: "task"
is a catalog task) under exactly these names.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.config.settings")

# Handler names: the contract between portal (producer) and workers (consumer).
HANDLER_RUN_JOB = "workers.run_job"
HANDLER_VALIDATE_DATASET = "workers.validate_dataset"
HANDLER_REQUEUE_LOST_JOBS = "workers.requeue_lost_jobs"
HANDLER_DISPATCH_PENDING_JOBS = "workers.dispatch_pending_jobs"
HANDLER_PREDICT = "workers.predict"
HANDLER_SWEEP_PREDICTIONS = "workers.sweep_predictions"
HANDLER_DISPATCH_PENDING_DATASETS = "workers.dispatch_pending_datasets"

# Queues: a job asking for a GPU goes to `gpu`, every other job to `cpu`.
QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"
# Short work: dataset validation, predictions and the periodic sweeps. A dedicated worker process
# serves it (`-Q short`, see the Makefile's worker-short, docker/compose.yaml and the README) so it
# never waits behind training; workers serving `cpu` also take it when idle (workers/handlers.py).
QUEUE_SHORT = "short"
# Where predictions used to go. Nothing is sent here any more; every worker that serves `short` still
# consumes it, so a message left from before the change is answered, not stranded.
QUEUE_PREDICT = "predict"

# The periodic sweeps: each runs on `short`, at most one message of each waits at a time (the beat
# scheduler in workers/beat.py holds a once-key per sweep until a worker starts it).
SWEEP_INTERVALS_S = {HANDLER_REQUEUE_LOST_JOBS: 60.0, HANDLER_DISPATCH_PENDING_JOBS: 30.0,
                     HANDLER_SWEEP_PREDICTIONS: 60.0, HANDLER_DISPATCH_PENDING_DATASETS: 30.0}
# A sweep message nobody started within this many seconds is taken for lost: it expires (a worker
# drops it unrun) and beat may send the next one.
SWEEP_PENDING_TTL_S = 300


def job_queue(device: str, gpu_count: int = 0) -> str:
    """The queue a job waits on: `cpu`, `gpu` (one GPU), or `gpu-x<N>` for a job asking for N > 1 GPUs,
    which only workers owning at least N GPUs consume (LABFORMER_WORKER_GPUS, workers/handlers.py)."""
    if device != "gpu":
        return QUEUE_CPU
    return QUEUE_GPU if gpu_count <= 1 else f"{QUEUE_GPU}-x{gpu_count}"

app = Celery("labformer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_default_queue=QUEUE_CPU,
    # Short work goes to `short` whoever sends it (an explicit queue= still wins).
    task_routes={name: {"queue": QUEUE_SHORT}
                 for name in (HANDLER_VALIDATE_DATASET, HANDLER_PREDICT, *SWEEP_INTERVALS_S)},
    # A job is acknowledged only when it ends, so a worker that dies mid-job leaves the message
    # to be delivered again; the job state machine makes the second delivery harmless.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One job at a time per worker process: long jobs must not sit prefetched behind another.
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    # Jobs a pool process runs before it is replaced. GPU workers run with --max-tasks-per-child 1 (see
    # docker/compose.yaml and the README) so GPU memory is returned to the driver between jobs; CPU
    # workers keep their process (replacing it adds ~3 s to the dispatch of the next job).
    worker_max_tasks_per_child=int(os.environ.get("CELERY_WORKER_MAX_TASKS_PER_CHILD", "0")) or None,
    broker_connection_retry_on_startup=True,
    # Publishing must not hang a web request when the broker is down: fail fast, the job stays
    # queued and the dispatch sweep sends it later.
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    broker_connection_timeout=2,
)

# Periodic work, run by `celery beat` (or the short worker started with -B in `make demo`).
app.conf.beat_scheduler = "workers.beat:SweepScheduler"
app.conf.beat_schedule = {
    name.removeprefix("workers.").replace("_", "-"): {
        "task": name, "schedule": every, "options": {"queue": QUEUE_SHORT, "expires": SWEEP_PENDING_TTL_S},
    }
    for name, every in SWEEP_INTERVALS_S.items()
}
