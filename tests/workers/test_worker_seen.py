"""A real worker registers itself and its queues when it is ready: the GPU check of job submission
reads these rows, so a GPU job is refused only where no GPU worker has ever started."""

from __future__ import annotations

import pytest

from portal.common.errors import ServiceError
from portal.jobs import services as job_services
from portal.jobs.models import WorkerSeen
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_started_worker_is_recorded_with_its_queues_and_the_gpus_it_has(start_worker, dna_dataset) -> None:  # noqa: ANN001
    import torch

    dataset = dna_dataset(n=20)
    with pytest.raises(ServiceError, match="no GPU worker is registered"):
        job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu")
    worker = start_worker(LABFORMER_WORKER_GPUS="2")  # serves cpu,gpu (tests/workers/conftest.py), like make demo's
    seen = wait_for(lambda: WorkerSeen.objects.filter(hostname__startswith=worker.name).first(), 30,
                    "the worker's registration", worker)
    assert {"cpu", "gpu", "gpu-x2", "predict"} <= set(seen.queues)
    # Serving the gpu queue is not having a GPU: the worker records the CUDA devices it can use.
    has = min(2, torch.cuda.device_count())
    assert seen.gpus == has
    if has == 0:  # a CPU machine: the GPU job is still refused, and the message says why
        with pytest.raises(ServiceError, match=r"serving the gpu queue \(test-.*\) have no GPU"):
            job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification",
                                    device="gpu")
    else:
        job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification",
                                      device="gpu", gpu_count=has)
        assert (job.device, job.gpu_count) == ("gpu", has)
