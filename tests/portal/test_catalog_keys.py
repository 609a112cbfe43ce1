"""Catalog keys (tasks, profiles, modalities) are checked by the services against mlcore.catalog as it is
now, not frozen as model choices: a task added to the catalog is offered, accepted, stored and queued
without a migration."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
from collections.abc import Iterator

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from mlcore import catalog
from portal.common.errors import ServiceError
from portal.config.celery import QUEUE_CPU, HANDLER_RUN_JOB
from portal.datasets import services as dataset_services
from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, MembershipFactory
from tests.workers.conftest import broker  # noqa: F401 - fixture reused

pytestmark = pytest.mark.django_db

NEW_TASK = "dna-runtime-probe"
NEW_PROFILE = "runtime-probe"


def test_no_catalog_key_is_frozen_as_model_choices() -> None:
    """The acceptance check: no field of jobs, datasets or results named like a catalog key has choices."""
    frozen = [f"{m.__name__}.{f.name}" for m in apps.get_models() if m._meta.app_label in ("jobs", "datasets", "results")
              for f in m._meta.get_fields()
              if any(w in getattr(f, "name", "") for w in ("task", "profile", "modality", "method"))
              and getattr(f, "choices", None)]
    assert frozen == []


@pytest.fixture
def runtime_task() -> Iterator[catalog.Task]:
    """A task and a profile registered in the catalog while the process runs (as a new catalog entry
    would be), removed afterwards."""
    assert NEW_TASK not in catalog.TASKS and NEW_PROFILE not in catalog.PROFILES
    task = dataclasses.replace(catalog.TASKS["dna-classification"], key=NEW_TASK, label="DNA runtime probe",
                               description="A task registered at run time by a test.")
    catalog.TASKS[NEW_TASK] = task
    catalog.PROFILES[NEW_PROFILE] = dataclasses.replace(catalog.PROFILES["baseline"], key=NEW_PROFILE,
                                                        label="Runtime probe profile")
    try:
        yield task
    finally:
        catalog.TASKS.pop(NEW_TASK, None)
        catalog.PROFILES.pop(NEW_PROFILE, None)


def _cpu_messages(client: redis.Redis) -> list[dict]:
    key = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + QUEUE_CPU
    keys = [key.encode(), *sorted(client.keys(f"{key}\x06\x16*"))]
    return [json.loads(raw) for k in keys for raw in client.lrange(k, 0, -1)]


def _job_ids(messages: list[dict]) -> list[int]:
    assert all(m["headers"]["task"] == HANDLER_RUN_JOB for m in messages)
    return [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]


def test_a_task_added_to_the_catalog_at_run_time_is_offered_submitted_and_queued_without_a_migration(
        runtime_task, broker, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001, F811
    membership = MembershipFactory()
    user = membership.user
    dataset = DatasetFactory(owner=user, lab=membership.lab, modality="dna", status=Dataset.Status.READY)

    # No model field or migration knows the keys: nothing to migrate.
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()

    # Offered: the launch form, the catalog page's filters, the API's catalog and its job filter.
    page = Client()
    page.force_login(user)
    launch = page.get(reverse("web:job_launch")).content.decode()
    assert f'<option value="{NEW_TASK}"' in launch and "DNA runtime probe" in launch
    assert f'value="{NEW_PROFILE}"' in launch
    assert f'<option value="{NEW_TASK}">' in page.get(reverse("web:catalog")).content.decode()
    api = token_client(user)
    assert NEW_TASK in [t["key"] for t in api.get("/api/v1/tasks/").json()]
    assert NEW_PROFILE in [p["key"] for p in api.get("/api/v1/profiles/").json()]
    assert api.get("/api/v1/jobs/", {"task": NEW_TASK}).status_code == 200
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert NEW_TASK in schema

    # Submitted through the service and through the API: stored with the new keys and queued.
    with django_capture_on_commit_callbacks(execute=True):
        by_service = job_services.job_submit(user=user, dataset=dataset, task_key=NEW_TASK, profile_key=NEW_PROFILE)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": NEW_TASK, "profile": NEW_PROFILE},
                            format="json")
    assert response.status_code == 201, response.content
    assert response.json()["task_key"] == NEW_TASK and response.json()["profile_key"] == NEW_PROFILE
    by_api = Job.objects.get(pk=response.json()["id"])
    for job in (by_service, by_api):
        job.refresh_from_db()
        assert (job.task_key, job.profile_key, job.status) == (NEW_TASK, NEW_PROFILE, Job.Status.QUEUED)
        assert job.config["task"] == NEW_TASK and job.config["target_kind"] == runtime_task.target_kind
        assert job.dispatched_at is not None  # the broker took its message
        assert job.task_label == "DNA runtime probe"
    assert sorted(_job_ids(_cpu_messages(broker))) == sorted([by_service.pk, by_api.pk])
    assert api.get("/api/v1/jobs/", {"task": NEW_TASK}).json()["results"][0]["task_key"] == NEW_TASK

    # The job page shows it (its label read from the catalog now).
    assert "DNA runtime probe" in page.get(reverse("web:job_detail", args=[by_api.pk])).content.decode()


def test_a_key_the_catalog_does_not_list_is_refused_naming_the_valid_keys(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    membership = MembershipFactory()
    dataset = DatasetFactory(owner=membership.user, lab=membership.lab, modality="dna", status=Dataset.Status.READY)
    with pytest.raises(ServiceError) as task_error:
        job_services.job_submit(user=membership.user, dataset=dataset, task_key=NEW_TASK)
    assert task_error.value.field == "task"
    assert f"unknown task '{NEW_TASK}'" in task_error.value.message and "dna-classification" in task_error.value.message
    with pytest.raises(ServiceError) as profile_error:
        job_services.job_submit(user=membership.user, dataset=dataset, task_key="dna-classification",
                                profile_key=NEW_PROFILE)
    assert profile_error.value.field == "profile"
    assert f"unknown profile '{NEW_PROFILE}'" in profile_error.value.message
    assert "int8" in profile_error.value.message
    with pytest.raises(ServiceError) as modality_error:
        dataset_services.dataset_create(owner=membership.user, lab=membership.lab, name="x", modality="rna-seq",
                                        file=ContentFile(b"sequence\nACGT\n", name="x.csv"), filename="x.csv")
    assert modality_error.value.field == "modality"
    assert "unknown modality 'rna-seq'; valid modalities: " in modality_error.value.message
    assert "protein" in modality_error.value.message
    with pytest.raises(ServiceError) as mapping_error:
        dataset_services.dataset_create(owner=membership.user, lab=membership.lab, name="x", modality="dna",
                                        file=ContentFile(b"sequence\nACGT\n", name="x.csv"), filename="x.csv",
                                        schema={"task": NEW_TASK})
    assert mapping_error.value.field == "task" and f"unknown task '{NEW_TASK}'" in mapping_error.value.message
    with pytest.raises(ServiceError, match="unknown task"):
        dataset_services.dataset_remap(user=membership.user, dataset=dataset, schema={"task": NEW_TASK})
    assert Job.objects.count() == 0 and Dataset.objects.count() == 1

    # The API's own check says the same, field by field.
    api = token_client(membership.user)
    answer = api.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": NEW_TASK, "profile": NEW_PROFILE},
                      format="json")
    assert answer.status_code == 400
    fields = answer.json()["error"]["fields"]
    assert f"unknown task '{NEW_TASK}'; valid tasks: " in fields["task"][0] and "jet-tagging" in fields["task"][0]
    assert f"unknown profile '{NEW_PROFILE}'; valid profiles: " in fields["profile"][0]
    listing = api.get("/api/v1/datasets/", {"modality": "rna-seq"})
    assert listing.status_code == 400 and "dna" in listing.json()["error"]["message"]
