"""Profile options and the baseline profile through real `celery worker` processes: the options a job
was submitted with reach the profile and its report; a baseline job gets a report too."""

from __future__ import annotations

import pytest

from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, Result
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status


def _status(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def test_worker_job_applies_the_jobs_profile_options(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset()
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  profile_key="pruned", hyperparameters={"epochs": 2, "patience": 0},
                                  options={"sparsity": "0.8", "steps": 1, "finetune_epochs": 0})
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 240, "the pruned job", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    report = Result.objects.get(job=job).compression_report
    assert report["options"] == {"budget": None, "sparsity": 0.8, "steps": 1, "finetune_epochs": 0}
    assert report["optimized"]["sparsity"] == pytest.approx(0.8, abs=0.01)  # the default is 0.5


def test_a_baseline_job_gets_a_report(start_worker, dna_dataset) -> None:  # noqa: ANN001
    worker = start_worker()
    dataset = dna_dataset()
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 2, "patience": 0})
    assert job.profile_key == "baseline"
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 240, "the baseline job", worker)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    result = Result.objects.get(job=job)
    report = result.compression_report
    assert report["profile"] == "baseline" and report["options"] == {}
    base = report["baseline"]
    assert base["metrics"]["accuracy"] == pytest.approx(result.baseline_metrics["accuracy"])  # accuracy
    assert base["bytes"] > 0 and base["params"] > 0  # size
    assert base["latency_ms_b1"] > 0 and base["latency_ms_b32"] > 0  # latency
    assert Artifact.objects.filter(job=job, kind="report", metadata__profile="baseline").exists()
    # The optimized model is the trained one: stored once, no optimized variant beside it.
    variants = [a.metadata.get("variant", "baseline") for a in Artifact.objects.filter(job=job, kind="model")]
    assert variants == ["baseline"] and result.optimized_metrics == {}
