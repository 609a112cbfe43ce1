"""Hostile API inputs through HTTP (Django's test client, the real PostgreSQL): a non-integer id in a
route, a time-zone offset PostgreSQL cannot store, a clone whose body is not an object, an enum
filter with an unknown value. Each is a 4xx that says what is wrong, never a 500 nor a silent
"no filter"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.accounts.models import Membership
from portal.jobs.models import Job
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member() -> Membership:
    return MembershipFactory(role=Membership.Role.OWNER)


@pytest.fixture
def job(member: Membership) -> Job:
    dataset = DatasetFactory(owner=member.user, lab=member.lab)
    return JobFactory(owner=member.user, lab=member.lab, dataset=dataset, status=Job.Status.SUCCEEDED, progress=1.0)


def _error(response) -> dict:  # noqa: ANN001
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    return response.json()["error"]


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/jobs/abc/"),
    ("get", "/api/v1/jobs/1.5/"),
    ("get", "/api/v1/jobs/-1/"),
    ("get", "/api/v1/jobs/abc/metrics/"),
    ("post", "/api/v1/jobs/abc/cancel/"),
    ("post", "/api/v1/jobs/abc/clone/"),
    ("get", "/api/v1/jobs/abc/artifacts/x/download/"),
    ("get", "/api/v1/datasets/abc/"),
    ("delete", "/api/v1/datasets/abc/"),
    ("get", "/api/v1/predictions/abc/"),
    ("post", "/api/v1/tokens/abc/revoke/"),
    ("get", "/api/v1/uploads/not-a-uuid/"),
    ("put", "/api/v1/uploads/not-a-uuid/chunk/?offset=0"),
    ("post", "/api/v1/uploads/not-a-uuid/finish/"),
])
def test_non_integer_id_in_an_api_route_is_a_json_404(member: Membership, method: str, path: str) -> None:
    response = getattr(token_client(member.user), method)(path)
    assert response.status_code == 404
    error = _error(response)
    assert error["code"] == "not_found"
    assert "whole numbers" in error["message"] or path.endswith("1.5/")  # /1.5/ reads as id 1 in format "5"


@pytest.mark.parametrize("path", ["/jobs/abc/", "/jobs/abc/status.json", "/datasets/abc/", "/tokens/abc/revoke"])
def test_non_integer_id_in_a_page_route_is_a_404(member: Membership, path: str) -> None:
    client = Client()
    client.force_login(member.user)
    assert client.get(path).status_code == 404


def test_non_integer_id_never_reaches_a_view_as_text(member: Membership, job: Job) -> None:
    """The real routes still answer (the id pattern only turns away what is not a number)."""
    client = token_client(member.user)
    assert client.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
    assert client.get(f"/api/v1/jobs/{job.pk + 10_000}/").status_code == 404
    assert client.get(f"/api/v1/jobs/{10 ** 30}/").status_code == 404  # beyond bigint: still a plain 404


@pytest.mark.parametrize("value", [
    "9999-12-31T23:59:59-23:00",  # past year 9999 in UTC
    "0001-01-01T00:00:00+23:00",  # before year 1 in UTC
])
@pytest.mark.parametrize("param", ["created_after", "created_before"])
def test_timezone_offset_out_of_range_is_a_400(member: Membership, param: str, value: str) -> None:
    response = token_client(member.user).get("/api/v1/jobs/", {param: value})
    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid"
    assert param in error["message"] and "range" in error["message"]
    assert list(error["fields"]) == [param]


def test_timezone_offset_beyond_postgresql_range_filters_correctly(member: Membership, job: Job) -> None:
    """+20:00 is a valid offset to Python but not to PostgreSQL (at most 15:59): the filter converts
    to UTC itself, so the answer is right instead of a database error."""
    client = token_client(member.user)
    before = (job.created_at - timedelta(minutes=5)).astimezone(timezone.get_fixed_timezone(20 * 60))
    after = (job.created_at + timedelta(minutes=5)).astimezone(timezone.get_fixed_timezone(-20 * 60))
    ids = [row["id"] for row in client.get("/api/v1/jobs/", {"created_after": before.isoformat()}).json()["results"]]
    assert ids == [job.pk]
    response = client.get("/api/v1/jobs/", {"created_after": after.isoformat()})
    assert response.status_code == 200 and response.json()["results"] == []


def test_timezone_garbage_is_a_400_naming_the_parameter(member: Membership) -> None:
    response = token_client(member.user).get("/api/v1/jobs/", {"created_after": "2020-01-01T00:00:00+99:00"})
    assert response.status_code == 400
    assert _error(response)["message"].startswith("created_after:")


@pytest.mark.parametrize(("body", "content_type"), [
    ("[1, 2]", "application/json"),
    ("3", "application/json"),
    ('"profile_key=int8"', "application/json"),
    ("null", "application/json"),
    ("profile_key=int8", "application/x-www-form-urlencoded"),
    ("3", "text/plain"),
])
def test_clone_with_a_non_object_body_creates_no_job(member: Membership, job: Job, body: str,
                                                     content_type: str) -> None:
    response = token_client(member.user).post(f"/api/v1/jobs/{job.pk}/clone/", data=body, content_type=content_type)
    assert response.status_code in (400, 415), response.content
    assert _error(response)["message"]
    assert Job.objects.count() == 1


def test_clone_with_an_unknown_change_creates_no_job(member: Membership, job: Job) -> None:
    response = token_client(member.user).post(f"/api/v1/jobs/{job.pk}/clone/", {"learning_rate": 0.1}, format="json")
    assert response.status_code == 400
    error = _error(response)
    assert "learning_rate" in error["fields"] and "hyperparameters" in error["message"]
    assert Job.objects.count() == 1


def test_clone_with_an_object_still_clones(member: Membership, job: Job) -> None:
    response = token_client(member.user).post(f"/api/v1/jobs/{job.pk}/clone/", {"name": "again"}, format="json")
    assert response.status_code == 201
    assert Job.objects.get(pk=response.json()["id"]).name == "again"


@pytest.mark.parametrize(("path", "param", "value", "allowed"), [
    ("/api/v1/datasets/", "modality", "xyz", "dna"),
    ("/api/v1/datasets/", "modality", "", "dna"),
    ("/api/v1/datasets/", "status", "done", "ready"),
    ("/api/v1/datasets/", "visibility", "everyone", "public"),
    ("/api/v1/jobs/", "status", "finished", "succeeded"),
    ("/api/v1/jobs/", "task", "dna-clasification", "dna-classification"),
    ("/api/v1/jobs/", "profile", "int4", "int8"),
    ("/api/v1/jobs/", "device", "tpu", "cpu"),
    ("/api/v1/predictions/", "output", "xyz", "inline"),
    ("/api/v1/predictions/", "output", "", "inline"),
    ("/api/v1/uploads/", "status", "paused", "open"),
])
def test_unknown_enum_value_is_a_400_naming_allowed_values(member: Membership, job: Job, path: str, param: str,
                                                           value: str, allowed: str) -> None:
    response = token_client(member.user).get(path, {param: value})
    assert response.status_code == 400, response.content
    error = _error(response)
    assert list(error["fields"]) == [param]
    assert error["message"].startswith(f"{param}: unknown value {value!r}")
    assert allowed in error["message"]


def test_known_enum_values_still_filter(member: Membership, job: Job) -> None:
    client = token_client(member.user)
    assert [r["id"] for r in client.get("/api/v1/jobs/", {"status": "succeeded"}).json()["results"]] == [job.pk]
    assert client.get("/api/v1/jobs/", {"status": "failed"}).json()["results"] == []
    assert [r["id"] for r in client.get("/api/v1/jobs/", {"task": job.task_key}).json()["results"]] == [job.pk]


def test_unknown_api_route_is_a_json_404_and_a_missing_slash_redirects(member: Membership) -> None:
    client = token_client(member.user)
    assert _error(client.get("/api/v1/nothing/"))["code"] == "not_found"
    response = client.get("/api/v1/jobs?status=queued")
    assert response.status_code == 301 and response["Location"] == "/api/v1/jobs/?status=queued"
