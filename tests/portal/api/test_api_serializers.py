"""The hand-written job rows (the list's fast path) equal what DRF's field machinery produces."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone
from rest_framework import serializers

from portal.api.serializers import JobDetailSerializer, JobSerializer
from tests.portal.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("serializer_class", [JobSerializer, JobDetailSerializer])
def test_api_job_rows_match_drf_field_by_field(serializer_class: type[JobSerializer]) -> None:
    started = timezone.now()
    for job in (JobFactory(), JobFactory(status="failed", started_at=started, finished_at=started, heartbeat_at=started,
                                         progress=0.25, error_message="boom", error_traceback="Traceback ...")):
        fast = serializer_class(job).data
        reference = serializers.ModelSerializer.to_representation(serializer_class(job), job)
        assert json.dumps(fast) == json.dumps(reference)  # same keys, order, values and formats


def test_api_job_list_pages_equal_the_serializer_of_each_job() -> None:
    """The list's rows (read with .values(), written by job_rows) equal JobSerializer's, page after page."""
    from portal.accounts.models import Membership
    from portal.jobs.models import Job
    from tests.portal.api.conftest import token_client
    from tests.portal.factories import DatasetFactory, MembershipFactory

    member = MembershipFactory(role=Membership.Role.MEMBER)
    dataset = DatasetFactory(owner=member.user, lab=member.lab)
    started = timezone.now()
    for i in range(5):
        JobFactory(owner=member.user, lab=member.lab, dataset=dataset, status="failed" if i % 2 else "succeeded",
                   started_at=started if i % 2 else None, heartbeat_at=started, progress=i / 4, name=f"job-{i}")
    JobFactory(status="succeeded")  # another lab's, private to it: never listed
    client = token_client(member.user)
    for query, expected in [({}, Job.objects.filter(lab=member.lab)),
                            ({"status": "failed"}, Job.objects.filter(lab=member.lab, status="failed"))]:
        rows, url, params = [], "/api/v1/jobs/", {"page_size": 2, **query}
        while url:
            page = client.get(url, params).json()
            rows += page["results"]
            url, params = page["next"], None
        reference = JobSerializer(expected.select_related("owner", "lab", "dataset").order_by("-created_at"), many=True)
        assert json.dumps(rows) == json.dumps(reference.data)
