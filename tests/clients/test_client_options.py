"""Profile options from the `labformer` client and CLI (`submit --option KEY=VALUE`), against a live portal."""

from __future__ import annotations

import json

import pytest

from labformer_client import Client, InvalidInput
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from tests.clients.conftest import Portal
from tests.clients.test_client import cli
from tests.portal.factories import DatasetFactory
from tests.workers.conftest import broker  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_submit_sends_profile_options_and_shows_their_errors(portal: Portal, broker, request) -> None:  # noqa: ANN001, F811
    m = portal.membership
    ready = DatasetFactory(owner=m.user, lab=m.lab, status=Dataset.Status.READY)
    submitted = cli(portal, "submit", "--dataset", str(ready.pk), "--task", "dna-classification", "--profile", "pruned",
                    "--option", "sparsity=0.7", "--option", "steps=2", "--json")
    assert submitted.returncode == 0, submitted.stderr
    job = Job.objects.get(pk=json.loads(submitted.stdout)["id"])
    assert job.options["sparsity"] == 0.7 and job.options["steps"] == 2
    bad = cli(portal, "submit", "--dataset", str(ready.pk), "--task", "dna-classification", "--profile", "pruned",
              "--option", "sparsity=2")
    assert bad.returncode == 5 and "sparsity" in bad.stderr and "maximum 0.99" in bad.stderr
    client = Client(portal.url, portal.token)
    request.addfinalizer(client.close)
    with pytest.raises(InvalidInput) as refused:
        client.submit_job(ready.pk, "dna-classification", profile="int8", options={"temperature": 2})
    assert refused.value.status == 400 and "options.temperature" in refused.value.fields
    created = client.submit_job(ready.pk, "dna-classification", profile="distilled",
                                options={"temperature": 3, "student_preset": "tiny"})
    assert Job.objects.get(pk=created["id"]).options["temperature"] == 3.0
