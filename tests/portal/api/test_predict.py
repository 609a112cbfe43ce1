"""Predictions through HTTP: POST /api/v1/jobs/{id}/predict/ (inline and as a file), GET /api/v1/predictions/,
their download; the permission matrix, bad input, idempotency, and a real Celery worker answering."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.core.files.base import ContentFile
from rest_framework.test import APIClient

from mlcore.modeldir import model_load
from portal.accounts.models import APIToken, Membership, Visibility
from portal.accounts.services import api_token_create, api_token_revoke
from portal.jobs.models import Job
from portal.results.models import Prediction
from portal.results.services import PREDICT_INLINE_MAX_RECORDS
from tests.portal.api.conftest import TrainedModel, token_client
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import planted_motif_csv, wait_for

SEQS = ["ACGTTTGACGTCAAGGCTAACGTTAGCATCGATCGATCGA", "TTTTGGGGCCCCAAAATTTTGGGGCCCCAAAATTTTGGGG",
        "GATTACAGATTACATTGACGTCGATTACAGATTACAGATT"]


def _predict(client: APIClient, job: Job, records: list, **params: object):  # noqa: ANN202
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.post(f"/api/v1/jobs/{job.pk}/predict/?{query}", {"records": records}, format="json")


def _poll(client: APIClient, url: str, timeout: float = 120) -> dict:
    def finished() -> dict | None:
        body = client.get(url).json()
        return body if body["status"] in ("succeeded", "failed") else None

    return wait_for(finished, timeout, f"the prediction at {url} to finish")


# --- permissions (no worker: wait=0 answers 202 as soon as the request is stored) --------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("who", "predict", "see"), [
    ("owner", 202, 200), ("lab_member", 202, 404), ("other_lab", 404, 404), ("anonymous", 401, 401),
    ("revoked_token", 401, 401),
])
def test_predict_permission_matrix(who: str, predict: int, see: int, finished_job) -> None:  # noqa: ANN001
    owner = MembershipFactory(role=Membership.Role.OWNER)
    job = finished_job(owner, visibility=Visibility.LAB)
    mine = _predict(token_client(owner.user), job, SEQS[:1], wait=0)
    assert mine.status_code == 202, mine.json()
    url = f"/api/v1/predictions/{mine.json()['id']}/"
    if who == "revoked_token":
        token, secret = api_token_create(user=owner.user, name="old")
        api_token_revoke(user=owner.user, token_id=token.pk)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    else:
        client = token_client({"owner": owner.user, "lab_member": MembershipFactory(lab=owner.lab).user,
                          "other_lab": MembershipFactory().user, "anonymous": None}[who])
    asked = _predict(client, job, SEQS[:1], wait=0)
    assert asked.status_code == predict, asked.json()
    if predict == 202:
        body = asked.json()
        assert body["status"] == "queued" and body["output"] == "inline" and asked["Location"] == body["url"]
    else:
        assert asked.json()["error"]["code"] in ("not_found", "authentication_failed", "not_authenticated")
    # A prediction is its sender's: the records sent may be private even inside the lab.
    for path in (url, f"{url}download/"):
        assert client.get(path).status_code in ((see,) if see != 200 or path == url else (409,))
    listed = client.get("/api/v1/predictions/")
    if see == 200:
        assert [p["id"] for p in listed.json()["results"]][-1] == mine.json()["id"]
    elif listed.status_code == 200:
        assert mine.json()["id"] not in [p["id"] for p in listed.json()["results"]]
    assert Prediction.objects.filter(job=job).count() == 1 + (predict == 202)


@pytest.mark.django_db
def test_predict_private_job_of_a_lab_mate_is_404(finished_job) -> None:  # noqa: ANN001
    owner = MembershipFactory()
    job = finished_job(owner, visibility=Visibility.PRIVATE)
    refused = _predict(token_client(MembershipFactory(lab=owner.lab).user), job, SEQS, wait=0)
    assert refused.status_code == 404 and not Prediction.objects.exists()


# --- bad requests, refused before anything is stored ------------------------------------------------

@pytest.mark.django_db
def test_predict_refuses_bad_requests_and_stores_nothing(finished_job) -> None:  # noqa: ANN001
    member = MembershipFactory()
    job = finished_job(member)
    client = token_client(member.user)

    shapes = _predict(client, job, ["ACGT", 42, {"id": "x"}, {"id": "y", "input": ["AC"]}, {"input": "A", "seq": 1}],
                      wait=0)
    assert shapes.status_code == 400
    error = shapes.json()["error"]
    assert error["code"] == "invalid_records" and error["message"].startswith("4 of 5 records cannot be predicted")
    assert set(error["fields"]) == {"records[1]", "records[2]", "records[3]", "records[4]"}
    assert "expected a dna string, got a number" in error["fields"]["records[1]"][0]
    assert "needs an \"input\" key" in error["fields"]["records[2]"][0]
    assert "id 'y': expected a dna string, got a list" in error["fields"]["records[3]"][0]
    assert "unknown key(s) 'seq'" in error["fields"]["records[4]"][0]

    for body, field in (({"records": []}, "records"), ({}, "records"), ({"records": "ACGT"}, "records")):
        response = client.post(f"/api/v1/jobs/{job.pk}/predict/", body, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], response.json()
    for query, field in (("model=best", "model"), ("wait=100", "wait"), ("wait=soon", "wait")):
        response = client.post(f"/api/v1/jobs/{job.pk}/predict/?{query}", {"records": SEQS}, format="json")
        assert response.status_code == 400 and field in response.json()["error"]["fields"], response.json()

    empty = client.post(f"/api/v1/jobs/{job.pk}/predict/", {"file": ContentFile(b"", name="new.csv")},
                        format="multipart")
    assert empty.status_code == 400 and "file" in empty.json()["error"]["fields"]

    running = finished_job(member, status=Job.Status.RUNNING)
    busy = _predict(client, running, SEQS, wait=0)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "job_not_finished"
    assert "is running" in busy.json()["error"]["message"]
    baseline_only = finished_job(member, optimized=False)
    no_optimized = _predict(client, baseline_only, SEQS, model="optimized", wait=0)
    assert no_optimized.status_code == 400 and "model" in no_optimized.json()["error"]["fields"]
    assert "no optimized model (its profile is baseline)" in no_optimized.json()["error"]["message"]
    assert not Prediction.objects.exists()
    assert client.get("/api/v1/predictions/999999/").status_code == 404


@pytest.mark.django_db
def test_predict_idempotency_key_returns_the_first_prediction(finished_job) -> None:  # noqa: ANN001
    member = MembershipFactory()
    job = finished_job(member)
    client = token_client(member.user)
    url = f"/api/v1/jobs/{job.pk}/predict/?wait=0"
    first = client.post(url, {"records": SEQS}, format="json", HTTP_IDEMPOTENCY_KEY="predict-1")
    again = client.post(url, {"records": SEQS}, format="json", HTTP_IDEMPOTENCY_KEY="predict-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert Prediction.objects.count() == 1
    other = client.post(url, {"records": SEQS}, format="json", HTTP_IDEMPOTENCY_KEY="predict-2")
    assert other.json()["id"] != first.json()["id"] and Prediction.objects.count() == 2


# --- a real worker answers ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_predict_inline_file_and_large_batches_with_a_real_worker(
    finished_job: Callable[..., Job], trained_model: TrainedModel, start_worker,  # noqa: ANN001
) -> None:
    member = MembershipFactory()
    job = finished_job(member)
    client = token_client(member.user)
    worker = start_worker()

    # Small batch: answered inline, the same numbers as the model loaded locally.
    records = [{"id": "a", "input": SEQS[0]}, SEQS[1], {"id": 7, "input": SEQS[2].lower()}]
    answer = _predict(client, job, records)
    assert answer.status_code == 200, answer.json() if answer.status_code < 500 else worker.output()[-3000:]
    body = answer.json()
    assert body["status"] == "succeeded" and body["model"] == "baseline" and body["n_records"] == 3
    expected = model_load(trained_model.baseline_dir).predict([SEQS[0], SEQS[1], SEQS[2].lower()])
    assert [p["id"] for p in body["predictions"]] == ["a", "1", "7"]
    assert [p["index"] for p in body["predictions"]] == [0, 1, 2]
    for got, want in zip(body["predictions"], expected):
        assert got["prediction"] == want["prediction"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)
    optimized = _predict(client, job, records, model="optimized")
    assert optimized.status_code == 200 and optimized.json()["model"] == "optimized"
    assert [p["prediction"] for p in optimized.json()["predictions"]] == [p["prediction"] for p in expected] or all(
        abs(a["probabilities"]["1"] - b["probabilities"]["1"]) < 0.1
        for a, b in zip(optimized.json()["predictions"], expected))
    assert client.get(f"{body['url']}download/").json()["error"]["code"] == "no_file"

    # Bad values are found by the model's featurizer: each bad record named, nothing kept as a result.
    bad = _predict(client, job, [SEQS[0], "ACGTQACGT", {"id": "z", "input": "AC GT"}])
    assert bad.status_code == 400, bad.json()
    error = bad.json()["error"]
    assert error["code"] == "invalid_records" and error["message"].startswith("2 of 3 records cannot be predicted")
    assert "'Q'" in error["fields"]["records[1]"][0] and error["fields"]["records[2]"][0].startswith("id 'z': ")
    failed = Prediction.objects.get(status="failed")
    assert failed.predictions is None and not failed.result_file and failed.records is None
    assert [p["index"] for p in failed.error_records] == [1, 2]

    # wait=0: 202 at once, the worker still answers into the row.
    later = _predict(client, job, SEQS, wait=0)
    assert later.status_code == 202
    done = _poll(client, later.json()["url"])
    assert done["status"] == "succeeded" and len(done["predictions"]) == 3

    # A data file in the training format: 202, then a CSV with the file's lines.
    data = planted_motif_csv(30, length=40)
    sent = client.post(f"/api/v1/jobs/{job.pk}/predict/", {"file": ContentFile(data, name="new.csv")},
                       format="multipart", HTTP_IDEMPOTENCY_KEY="file-1")
    assert sent.status_code == 202 and sent.json()["output"] == "file" and sent.json()["input_filename"] == "new.csv"
    done = _poll(client, sent.json()["url"])
    assert done["status"] == "succeeded" and done["n_records"] == 30 and done["predictions"] is None
    download = client.get(done["result_url"])
    assert download.status_code == 200 and download["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0] == ["id", "line", "prediction", "prob_0", "prob_1"]
    assert [int(r[1]) for r in rows[1:]] == list(range(2, 32))
    stored = Prediction.objects.get(pk=done["id"])
    assert stored.result_sha256 and not stored.input_file.storage.exists(stored.input_file.name)  # inputs dropped

    # A file with a bad line: failed, the line named, no CSV.
    broken = data.replace(b"\n", b"\nACGTXX,1\n", 1)
    sent = client.post(f"/api/v1/jobs/{job.pk}/predict/", {"file": ContentFile(broken, name="broken.csv")},
                       format="multipart")
    done = _poll(client, sent.json()["url"])
    assert done["status"] == "failed" and done["error"]["code"] == "invalid_records" and done["result_url"] is None
    assert done["error"]["records"][0]["line"] == 2 and "'X'" in done["error"]["records"][0]["message"]
    assert client.get(f"{sent.json()['url']}download/").json()["error"]["code"] == "not_ready"

    # More records than an inline answer holds: stored and predicted into a CSV with each record's index.
    many = [SEQS[i % 3] for i in range(PREDICT_INLINE_MAX_RECORDS + 1)]
    sent = _predict(client, job, many)
    assert sent.status_code == 202 and sent.json()["output"] == "file"
    done = _poll(client, sent.json()["url"])
    assert done["status"] == "succeeded", done
    rows = list(csv.reader(io.StringIO(b"".join(client.get(done["result_url"]).streaming_content).decode())))
    assert rows[0][:3] == ["id", "index", "prediction"] and len(rows) == len(many) + 1
    assert rows[1][2] == expected[0]["prediction"] and rows[-1][1] == str(len(many) - 1)
    assert {p["status"] for p in client.get("/api/v1/predictions/", {"job": job.pk}).json()["results"]} == {
        "succeeded", "failed"}
    assert APIToken.objects.filter(user=member.user).exists()


@pytest.mark.django_db
def test_predict_file_over_the_upload_limit_is_refused_and_names_are_cleaned(finished_job, settings) -> None:  # noqa: ANN001
    member = MembershipFactory()
    job = finished_job(member)
    client = token_client(member.user)
    settings.LABFORMER_MAX_UPLOAD_BYTES = 100
    big = client.post(f"/api/v1/jobs/{job.pk}/predict/", {"file": ContentFile(b"sequence\n" + b"ACGT\n" * 50,
                                                                              name="big.csv")}, format="multipart")
    assert big.status_code == 400 and "over the upload limit of 100 bytes" in big.json()["error"]["fields"]["file"][0]
    assert not Prediction.objects.exists()
    odd = client.post(f"/api/v1/jobs/{job.pk}/predict/", {"file": ContentFile(b"sequence\nACGT\n",
                                                                              name="../../new data;rm.csv.gz")},
                      format="multipart")
    assert odd.status_code == 202 and odd.json()["input_filename"] == "new_data_rm.csv.gz"
    stored = Prediction.objects.get()
    assert stored.input_file.name.startswith(f"predictions/{job.pk}/{stored.uid}/input-new_data_rm.csv")
