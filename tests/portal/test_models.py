"""Database constraints hold even when code bypasses the services."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from portal.jobs.models import Job
from tests.portal.factories import DatasetFactory, JobFactory, LabFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "exploded"},
        {"progress": 1.5},
        {"progress": -0.1},
        {"device": "cpu", "gpu_count": 2},
        {"device": "gpu", "gpu_count": 0},
        {"visibility": "secret"},
    ],
)
def test_job_constraints(fields: dict) -> None:
    job = JobFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=job.pk).update(**fields)


def test_idempotency_key_unique_per_owner_only() -> None:
    job = JobFactory(idempotency_key="abc")
    JobFactory(idempotency_key="abc")  # another owner may reuse the key
    JobFactory(owner=job.owner, idempotency_key=None)
    JobFactory(owner=job.owner, idempotency_key=None)  # many keyless jobs are fine
    with pytest.raises(IntegrityError), transaction.atomic():
        JobFactory(owner=job.owner, lab=job.lab, idempotency_key="abc")


def test_dataset_name_version_unique_in_lab() -> None:
    lab = LabFactory()
    DatasetFactory(lab=lab, name="genes", version=1)
    DatasetFactory(name="genes", version=1)  # another lab
    with pytest.raises(IntegrityError), transaction.atomic():
        DatasetFactory(lab=lab, name="genes", version=1)


@pytest.mark.parametrize("fields", [{"status": "done"}, {"version": 0}, {"visibility": "world"}])
def test_dataset_constraints(fields: dict) -> None:
    from portal.datasets.models import Dataset

    dataset = DatasetFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).update(**fields)


def test_migrations_are_complete() -> None:
    """Every model change has its migration (a missing one would break a fresh deployment)."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
