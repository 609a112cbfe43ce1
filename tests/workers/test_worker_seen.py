"""A real worker registers itself and its queues when it is ready: the GPU check of job submission
reads these rows, so a GPU job is refused only where no GPU worker has ever started."""

from __future__ import annotations

import pytest

from portal.common.errors import ServiceError
from portal.jobs import services as job_services
from portal.jobs.models import WorkerSeen
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_started_worker_is_recorded_with_its_queues_and_gpus(start_worker, dna_dataset) -> None:  # noqa: ANN001
    dataset = dna_dataset(n=20)
    with pytest.raises(ServiceError, match="no GPU worker is registered"):
        job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu")
    worker = start_worker(LABFORMER_WORKER_GPUS="2")  # serves cpu,gpu (tests/workers/conftest.py)
    seen = wait_for(lambda: WorkerSeen.objects.filter(hostname__startswith=worker.name).first(), 30,
                    "the worker's registration", worker)
    assert {"cpu", "gpu", "gpu-x2", "predict"} <= set(seen.queues) and seen.gpus == 2
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu",
                                  gpu_count=2)
    assert (job.device, job.gpu_count) == ("gpu", 2)
