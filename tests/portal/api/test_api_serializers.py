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
