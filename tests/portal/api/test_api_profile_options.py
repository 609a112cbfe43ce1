"""Profile options through the REST API: job create accepts an `options` object checked against the
catalog (400 with the field path `options.<name>` otherwise), stores it typed on the Job, clone carries
it, and the OpenAPI schema documents it."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from portal.accounts.models import Membership
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, MembershipFactory

pytestmark = pytest.mark.django_db
CSV = b"sequence,label\nACGTACGTAA,1\nTTTTGGGGCC,0\nACGTTTGACG,1\nGGGGCCCCAA,0\n"


@pytest.fixture
def member() -> Membership:
    return MembershipFactory(role=Membership.Role.MEMBER)


def _body(member: Membership, **changes) -> dict:  # noqa: ANN003
    dataset = DatasetFactory(owner=member.user, lab=member.lab, status=Dataset.Status.READY,
                             original_file=ContentFile(CSV, name="d.csv"), original_filename="d.csv")
    return {"dataset": dataset.pk, "task": "dna-classification", "preset": "tiny",
            "hyperparameters": {"epochs": 2}, **changes}


def test_api_job_create_accepts_profile_options_and_stores_them_typed(member, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    client = token_client(member.user)
    with django_capture_on_commit_callbacks(execute=False):
        created = client.post("/api/v1/jobs/", _body(member, profile="pruned",
                                                     options={"sparsity": 0.7, "steps": "2", "budget": 0.05}),
                              format="json")
    assert created.status_code == 201, created.json()
    job = Job.objects.get(pk=created.json()["id"])
    assert job.options == {"budget": 0.05, "sparsity": 0.7, "steps": 2, "finetune_epochs": 1}
    assert job.config["budget"] == 0.05
    detail = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert detail["options"]["sparsity"] == 0.7
    # A clone keeps them, with changed ones merged over; a clone to another profile keeps only what it has.
    with django_capture_on_commit_callbacks(execute=False):
        cloned = client.post(f"/api/v1/jobs/{job.pk}/clone/", {"options": {"sparsity": 0.9}}, format="json").json()
        slim = client.post(f"/api/v1/jobs/{job.pk}/clone/", {"profile_key": "slim", "options": {"ffn_fraction": 0.3}},
                           format="json").json()
        baseline = client.post(f"/api/v1/jobs/{job.pk}/clone/", {"profile_key": "baseline"}, format="json").json()
    assert Job.objects.get(pk=cloned["id"]).options == {"budget": 0.05, "sparsity": 0.9, "steps": 2, "finetune_epochs": 1}
    assert Job.objects.get(pk=slim["id"]).options == {"budget": 0.05, "ffn_fraction": 0.3, "head_fraction": 0.25,
                                                      "steps": 2, "finetune_epochs": 1}
    assert Job.objects.get(pk=baseline["id"]).options == {}
    # The legacy `budget` field is the budget option.
    with django_capture_on_commit_callbacks(execute=False):
        legacy = client.post("/api/v1/jobs/", _body(member, profile="slim", budget=0.02), format="json")
    assert Job.objects.get(pk=legacy.json()["id"]).options["budget"] == 0.02


@pytest.mark.parametrize("profile, options, field, words", [
    ("pruned", {"sparsity": 1.5}, "options.sparsity", "above the maximum 0.99"),
    ("pruned", {"sparsity": "lots"}, "options.sparsity", "not a number"),
    ("pruned", {"temperature": 2}, "options.temperature", "has no option 'temperature'"),
    ("distilled", {"student_preset": "huge"}, "options.student_preset", "one of tiny, small, base"),
    ("int8", {"engine": 3}, "options.engine", "not one of the choices"),
    ("baseline", {"budget": 0.1}, "options.budget", "has no option 'budget'"),
])
def test_api_job_create_refuses_bad_options_with_the_field_path(member, profile, options, field, words) -> None:  # noqa: ANN001
    client = token_client(member.user)
    response = client.post("/api/v1/jobs/", _body(member, profile=profile, options=options), format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert field in error["fields"] and words in error["message"]
    assert not Job.objects.exists()


def test_api_options_must_be_an_object_and_the_schema_documents_them(member) -> None:  # noqa: ANN001
    client = token_client(member.user)
    response = client.post("/api/v1/jobs/", _body(member, profile="pruned", options=[1, 2]), format="json")
    assert response.status_code == 400 and "options" in response.json()["error"]["fields"]
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    create = schema["components"]["schemas"]["JobCreateRequest"]["properties"]["options"]
    assert create["type"] == "object"
    assert "sparsity" in create["description"] and "temperature" in create["description"]
    assert "options.<name>" in create["description"]
    assert "options" in schema["components"]["schemas"]["JobDetail"]["properties"]


def test_api_profiles_list_their_options_and_the_client_sends_them(member, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    client = token_client(member.user)
    profiles = {p["key"]: p for p in client.get("/api/v1/profiles/").json()}
    assert profiles["baseline"]["options"] == []
    sparsity = next(o for o in profiles["pruned"]["options"] if o["name"] == "sparsity")
    assert (sparsity["type"], sparsity["default"], sparsity["min"], sparsity["max"]) == ("float", 0.5, 0.0, 0.99)
    engine = next(o for o in profiles["int8"]["options"] if o["name"] == "engine")
    assert engine["type"] == "choice" and "fbgemm" in engine["choices"]
