"""The REST API through HTTP (DRF's test client): auth, permissions, datasets, chunked uploads,
jobs, results, idempotency and JSON errors."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts.models import Membership, Visibility
from portal.accounts.services import api_token_create, api_token_revoke
from portal.datasets.models import Dataset, UploadSession
from portal.jobs.models import Job
from portal.results.models import MetricPoint
from portal.results.services import artifact_create, result_record
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, JobFactory, LabFactory, MembershipFactory

pytestmark = pytest.mark.django_db
CSV = b"sequence,label\nACGTACGTAA,1\nTTTTGGGGCC,0\nACGTTTGACG,1\nGGGGCCCCAA,0\n"


@pytest.fixture
def member() -> Membership:
    return MembershipFactory(role=Membership.Role.MEMBER)


def _ready(membership: Membership, **kw) -> Dataset:  # noqa: ANN003
    return DatasetFactory(owner=membership.user, lab=membership.lab, status=Dataset.Status.READY,
                          original_file=ContentFile(CSV, name="d.csv"), original_filename="d.csv", **kw)


# --- auth ---------------------------------------------------------------------------------

def test_api_anonymous_gets_json_401() -> None:
    response = APIClient().get("/api/v1/datasets/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] in ("not_authenticated", "authentication_failed")


def test_api_token_shown_once_stored_hashed_and_revocable(member: Membership) -> None:
    session = APIClient()
    session.force_login(member.user)
    created = session.post("/api/v1/tokens/", {"name": "pipeline"}, format="json")
    assert created.status_code == 201
    secret = created.json()["token"]
    assert secret.startswith("lf_") and secret.split("_", 2)[2] not in str(member.user.api_tokens.get().secret_hash)
    listed = session.get("/api/v1/tokens/").json()
    assert "token" not in listed[0]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert bearer.get("/api/v1/tasks/").status_code == 200
    assert session.post(f"/api/v1/tokens/{listed[0]['id']}/revoke/").status_code == 200
    refused = bearer.get("/api/v1/tasks/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"


def test_api_expired_and_malformed_tokens_are_refused(member: Membership) -> None:
    token, secret = api_token_create(user=member.user, name="short", expires_at=timezone.now() + timedelta(seconds=60))
    type(token).objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for header in (f"Bearer {secret}", "Bearer lf_nothere_x", "Bearer garbage", f"Bearer {secret[:-2]}xx"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert client.get("/api/v1/datasets/").status_code == 401


def test_api_catalog_lists_every_task_profile_and_preset(member: Membership) -> None:
    from mlcore import catalog

    client = token_client(member.user)
    assert {t["key"] for t in client.get("/api/v1/tasks/").json()} == set(catalog.TASKS)
    assert {p["key"] for p in client.get("/api/v1/profiles/").json()} == set(catalog.PROFILES)
    assert {p["key"] for p in client.get("/api/v1/presets/").json()} == set(catalog.PRESETS)


# --- datasets ---------------------------------------------------------------------------------

def test_api_dataset_upload_is_idempotent_and_kept_byte_for_byte(member: Membership, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    client = token_client(member.user)

    def post():  # noqa: ANN202
        return client.post("/api/v1/datasets/", {
            "file": ContentFile(CSV, name="promoters.csv"), "name": "promoters", "lab": member.lab.slug,
            "modality": "dna", "policy": "skip", "mapping": '{"input_cols": ["sequence"], "task": "dna-classification"}',
        }, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = post()
    assert first.status_code == 201, first.json()
    again = post()
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Dataset.objects.count() == 1 and len(callbacks) == 1  # one validation enqueued
    body = first.json()
    assert body["policy"] == "skip" and body["schema"]["task"] == "dna-classification"
    download = client.get(f"/api/v1/datasets/{body['id']}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == CSV


def test_api_dataset_upload_errors_name_the_field(member: Membership) -> None:
    client = token_client(member.user)
    response = client.post("/api/v1/datasets/", {"file": ContentFile(CSV, name="x.csv"), "name": "x",
                                                 "lab": member.lab.slug, "modality": "audio"}, format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "modality" in error["fields"]
    other_lab = client.post("/api/v1/datasets/", {"file": ContentFile(CSV, name="x.csv"), "name": "x",
                                                  "lab": LabFactory().slug, "modality": "dna"}, format="multipart")
    assert other_lab.status_code == 400 and "lab" in other_lab.json()["error"]["fields"]


@pytest.mark.parametrize(("who", "visibility", "expected"), [
    ("owner", "private", 200), ("lab_member", "private", 404), ("lab_member", "lab", 200),
    ("other_lab", "lab", 404), ("other_lab", "public", 200),
])
def test_api_dataset_permission_matrix(who: str, visibility: str, expected: int) -> None:
    owner = MembershipFactory(role=Membership.Role.OWNER)
    dataset = _ready(owner, visibility=visibility)
    users = {"owner": owner.user, "lab_member": MembershipFactory(lab=owner.lab).user,
             "other_lab": MembershipFactory().user}
    client = token_client(users[who])
    response = client.get(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == expected
    if expected == 404:
        assert response.json()["error"]["code"] == "not_found"
        assert client.get(f"/api/v1/datasets/{dataset.pk}/download/").status_code == 404
    listed = [d["id"] for d in client.get("/api/v1/datasets/").json()["results"]]
    assert (dataset.pk in listed) is (expected == 200)


def test_api_dataset_list_filters_and_preview(member: Membership) -> None:
    a = _ready(member, name="alpha")
    _ready(member, name="beta", modality="smiles")
    client = token_client(member.user)
    names = [d["name"] for d in client.get("/api/v1/datasets/", {"modality": "dna"}).json()["results"]]
    assert names == ["alpha"]
    assert [d["name"] for d in client.get("/api/v1/datasets/", {"search": "bet"}).json()["results"]] == ["beta"]
    preview = client.get(f"/api/v1/datasets/{a.pk}/preview/", {"rows": 2}).json()
    assert preview["columns"] == ["sequence", "label"] and preview["rows"] == [["ACGTACGTAA", "1"], ["TTTTGGGGCC", "0"]]


def test_api_dataset_delete_refused_while_jobs_use_it(member: Membership) -> None:
    dataset = _ready(member)
    JobFactory(owner=member.user, lab=member.lab, dataset=dataset)
    client = token_client(member.user)
    refused = client.delete(f"/api/v1/datasets/{dataset.pk}/")
    assert refused.status_code == 409 and "used by 1 job" in refused.json()["error"]["message"]
    free = _ready(member, name="free")
    assert client.delete(f"/api/v1/datasets/{free.pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=free.pk).exists()


# --- chunked uploads ---------------------------------------------------------------------------

def test_api_chunked_upload_resumes_rejects_out_of_order_and_verifies_checksum(member: Membership, settings, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    client = token_client(member.user)
    payload = CSV * 50
    pieces = [payload[i:i + 100] for i in range(0, len(payload), 100)]
    session = client.post("/api/v1/uploads/", {"name": "big", "filename": "big.csv", "lab": member.lab.slug,
                                               "modality": "dna", "size_bytes": len(payload)}, format="json").json()
    url = f"/api/v1/uploads/{session['id']}"

    def put(offset: int, data: bytes):  # noqa: ANN202
        return client.put(f"{url}/chunk/?offset={offset}", data=data, content_type="application/octet-stream",
                          HTTP_CONTENT_DISPOSITION="attachment; filename=big.csv")

    assert put(0, pieces[0]).json()["offset"] == 100
    skipped = put(200, pieces[2])
    assert skipped.status_code == 409 and "resume from 100" in skipped.json()["error"]["message"]
    # The connection drops after the server stored chunk 1 but before the client saw the answer:
    # the client asks where the server is, and goes on from there.
    put(100, pieces[1])
    offset = client.get(f"{url}/").json()["offset"]
    assert offset == 200
    for i in range(offset // 100, len(pieces)):
        assert put(i * 100, pieces[i]).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        finished = client.post(f"{url}/finish/", {"sha256": hashlib.sha256(payload).hexdigest()}, format="json")
    assert finished.status_code == 201
    dataset = Dataset.objects.get(pk=finished.json()["id"])
    with dataset.original_file.open("rb") as fh:
        assert fh.read() == payload
    assert not list(Path(settings.LABFORMER_UPLOAD_STAGING).glob("*.part"))


def test_api_chunked_upload_with_wrong_checksum_keeps_nothing(member: Membership, settings) -> None:  # noqa: ANN001
    client = token_client(member.user)
    session = client.post("/api/v1/uploads/", {"name": "bad", "filename": "bad.csv", "lab": member.lab.slug,
                                               "modality": "dna", "size_bytes": len(CSV)}, format="json").json()
    url = f"/api/v1/uploads/{session['id']}"
    client.put(f"{url}/chunk/?offset=0", data=CSV, content_type="application/octet-stream",
               HTTP_CONTENT_DISPOSITION="attachment; filename=bad.csv")
    wrong = client.post(f"{url}/finish/", {"sha256": "0" * 64}, format="json")
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "checksum_mismatch"
    assert Dataset.objects.count() == 0
    assert UploadSession.objects.get(uid=session["id"]).status == "aborted"
    assert not list(Path(settings.LABFORMER_UPLOAD_STAGING).glob("*.part"))


def test_api_upload_over_the_limit_is_refused_before_any_byte(member: Membership, settings) -> None:  # noqa: ANN001
    settings.LABFORMER_MAX_UPLOAD_BYTES = 1000
    response = token_client(member.user).post("/api/v1/uploads/", {
        "name": "huge", "filename": "huge.csv", "lab": member.lab.slug, "modality": "dna", "size_bytes": 10**9,
    }, format="json")
    assert response.status_code == 400 and "over the upload limit" in response.json()["error"]["message"]


# --- jobs -------------------------------------------------------------------------------------

def test_api_job_create_is_idempotent_and_validates_against_the_catalog(member: Membership, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    dataset = _ready(member)
    client = token_client(member.user)
    body = {"dataset": dataset.pk, "task": "dna-classification", "preset": "tiny",
            "hyperparameters": {"epochs": 2}}
    with django_capture_on_commit_callbacks(execute=False):
        first = client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
        second = client.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="job-1")
    assert first.status_code == 201 and second.json()["id"] == first.json()["id"] and Job.objects.count() == 1
    bad = client.post("/api/v1/jobs/", {**body, "hyperparameters": {"epochs": -1}}, format="json")
    assert bad.status_code == 400 and "epochs" in bad.json()["error"]["message"]
    wrong_task = client.post("/api/v1/jobs/", {**body, "task": "molecule-regression"}, format="json")
    assert wrong_task.status_code == 400 and "task" in wrong_task.json()["error"]["fields"]
    wrong_split = client.post("/api/v1/jobs/", {**body, "split": "scaffold"}, format="json")
    assert wrong_split.status_code == 400 and "split" in wrong_split.json()["error"]["fields"]
    with django_capture_on_commit_callbacks(execute=False):
        stratified = client.post("/api/v1/jobs/", {**body, "split": "stratified"}, format="json")
    assert stratified.status_code == 201
    assert client.get(f"/api/v1/jobs/{stratified.json()['id']}/").json()["config"]["split"] == "stratified"


def test_api_job_cancel_retry_clone_and_filters(member: Membership, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    dataset = _ready(member)
    client = token_client(member.user)
    with django_capture_on_commit_callbacks(execute=False):
        job = client.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": "dna-classification",
                                            "hyperparameters": {"epochs": 3}}, format="json").json()
        cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel/")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = client.post(f"/api/v1/jobs/{job['id']}/cancel/")
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        retried = client.post(f"/api/v1/jobs/{job['id']}/retry/").json()
        cloned = client.post(f"/api/v1/jobs/{job['id']}/clone/", {"hyperparameters": {"lr": 0.01}}, format="json").json()
    assert retried["id"] != job["id"] and retried["status"] == "queued"
    detail = client.get(f"/api/v1/jobs/{cloned['id']}/").json()
    assert detail["config"]["hyperparameters"]["epochs"] == 3 and detail["config"]["hyperparameters"]["lr"] == 0.01
    statuses = [j["status"] for j in client.get("/api/v1/jobs/", {"status": "cancelled"}).json()["results"]]
    assert statuses == ["cancelled"]


def test_api_job_of_another_lab_is_404_and_viewer_cannot_launch() -> None:
    owner = MembershipFactory(role=Membership.Role.OWNER)
    job = JobFactory(owner=owner.user, lab=owner.lab, visibility=Visibility.LAB)
    outsider = token_client(MembershipFactory().user)
    assert outsider.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/jobs/{job.pk}/cancel/").status_code == 404
    viewer = MembershipFactory(lab=owner.lab, role=Membership.Role.VIEWER)
    dataset = _ready(owner)
    refused = token_client(viewer.user).post("/api/v1/jobs/", {"dataset": dataset.pk, "task": "dna-classification"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_allowed"


def test_api_job_results_series_and_artifacts(member: Membership, tmp_path: Path) -> None:
    job = JobFactory(owner=member.user, lab=member.lab)
    MetricPoint.objects.bulk_create([MetricPoint(job=job, split="train", name="loss", step=i, epoch=1, value=1 / i)
                                     for i in range(1, 101)])
    client = token_client(member.user)
    series = client.get(f"/api/v1/jobs/{job.pk}/series/", {"name": "loss", "max_points": 10}).json()
    steps = [p["step"] for p in series["splits"]["train"]]
    assert len(steps) == 10 and steps[0] == 1 and steps[-1] == 100
    path = tmp_path / "predictions.csv"
    path.write_bytes(b"id,prediction\n1,0\n")
    artifact = artifact_create(job_id=job.pk, kind="predictions", path=path)
    listed = client.get(f"/api/v1/jobs/{job.pk}/artifacts/").json()
    assert [a["kind"] for a in listed] == ["predictions"]
    download = client.get(f"/api/v1/jobs/{job.pk}/artifacts/{artifact.pk}/download/")
    assert b"".join(download.streaming_content) == path.read_bytes()
    assert client.get(f"/api/v1/jobs/{job.pk}/artifacts/{artifact.pk + 999}/download/").status_code == 404
    # the final numbers, and where the model was trained
    assert client.get(f"/api/v1/jobs/{job.pk}/metrics/").json()["environment"] == {}
    env = {"device": "cuda", "device_name": "NVIDIA H200", "precision": "bf16", "torch": "2.11.0", "cuda": "13.0",
           "threads": 16, "world_size": 1}
    result_record(job_id=job.pk, baseline_metrics={"roc_auc": 0.9}, environment=env)
    metrics = client.get(f"/api/v1/jobs/{job.pk}/metrics/").json()
    assert metrics["baseline"] == {"roc_auc": 0.9} and metrics["environment"] == env


def test_api_docs_served_without_cdn(member: Membership) -> None:
    client = APIClient()
    client.force_login(member.user)
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower() and "https://" not in page
    assert client.get("/api/schema/").status_code == 200
