"""A real `celery worker` chooses a job's torch threads with mlcore.threads (the CLI's rule) and records
them in the job's environment: a tiny model trained with torch's default of one thread per core ran
15x slower in the worker than from the CLI on a busy machine."""

from __future__ import annotations

import pytest

from mlcore.threads import THREADS_ENV, cores_available
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Result
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _environment(worker, dataset) -> dict:  # noqa: ANN001
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 1, "patience": 0})
    wait_for(lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).exists(), 300,
             "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == "succeeded", job.error_message + job.error_traceback
    return Result.objects.get(job=job).environment


def test_the_worker_gives_a_tiny_job_one_sleeping_thread(start_worker, worker_env, dna_dataset) -> None:  # noqa: ANN001
    # Nothing inherited from the test process decides it: the worker sets the wait policy itself.
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME", THREADS_ENV):
        worker_env.pop(name, None)
    env = _environment(start_worker(), dna_dataset(n=60))
    assert (env["threads"], env["interop_threads"]) == (1, 1), env
    assert env["omp_wait_policy"] == "PASSIVE" and env["cores"] == cores_available()
    assert env["sharing"] == 1 and env["threads_reason"].startswith("d_model 64"), env


def test_labformer_torch_threads_overrides_the_worker_choice(start_worker, worker_env, dna_dataset) -> None:  # noqa: ANN001
    worker_env.pop("OMP_NUM_THREADS", None)
    env = _environment(start_worker(**{THREADS_ENV: "2,2"}), dna_dataset(n=60))
    assert (env["threads"], env["interop_threads"], env["threads_reason"]) == (2, 2, THREADS_ENV), env
