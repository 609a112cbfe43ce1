"""The Python client and the `labformer` CLI end to end against a live portal (pytest-django's
`live_server`, serving the test database) and a real Celery worker: upload with a dropped connection
and resume, validation, submit, wait, download; the CLI's JSON output, pagination and exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from labformer_client import AuthError, Client, InvalidInput, NotFound, WaitTimeout
from portal.datasets.models import Dataset, UploadSession
from portal.jobs.models import Job
from tests.clients.conftest import DroppingProxy, Portal
from tests.portal.factories import DatasetFactory, JobFactory
from tests.workers.conftest import planted_motif_csv

pytestmark = pytest.mark.django_db(transaction=True)
MAPPING = {"input_cols": ["sequence"], "target_cols": ["label"], "task": "dna-classification"}
LABFORMER = Path(sys.executable).with_name("labformer")


def cli(portal: Portal, *args: str, token: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the installed `labformer` entry point (falls back to `python -m` outside a venv install)."""
    command = [str(LABFORMER)] if LABFORMER.exists() else [sys.executable, "-m", "labformer_client"]
    env = {**os.environ, "LABFORMER_URL": portal.url, "LABFORMER_TOKEN": token or portal.token}
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_client_upload_survives_a_dropped_connection_then_trains_and_downloads(
    portal: Portal, dropping_proxy: DroppingProxy, start_worker, tmp_path: Path,  # noqa: ANN001
    request: pytest.FixtureRequest,
) -> None:
    worker = start_worker()
    data = planted_motif_csv(64, length=40)
    path = tmp_path / "motif.csv"
    path.write_bytes(data)
    client = Client(dropping_proxy.url, portal.token, backoff=0.05)
    request.addfinalizer(client.close)
    # The connection breaks in the middle of the second chunk: the server keeps the first chunk only,
    # the client asks it for its offset and goes on from there.
    dropping_proxy.drop_after(2500)
    offsets: list[int] = []
    dataset = client.upload_dataset(path, name="motif", lab=portal.membership.lab.slug, modality="dna",
                                    mapping=MAPPING, chunk_size=1024, progress=lambda sent, total: offsets.append(sent))
    assert dropping_proxy.dropped == 1
    assert offsets[-1] == len(data) and any(b <= a for a, b in zip(offsets, offsets[1:])), offsets  # resumed
    assert dataset["sha256"] == hashlib.sha256(data).hexdigest() and dataset["size_bytes"] == len(data)
    assert UploadSession.objects.get().status == UploadSession.Status.FINISHED
    with Dataset.objects.get(pk=dataset["id"]).original_file.open("rb") as fh:
        assert fh.read() == data  # byte for byte

    ready = client.wait_dataset(dataset, timeout=120, poll=0.3)
    assert ready["status"] == "ready", ready.get("validation_report")
    job = client.submit_job(ready, "dna-classification", hyperparameters={"epochs": 1, "patience": 0, "batch_size": 16},
                            idempotency_key="e2e-job")
    again = client.submit_job(ready, "dna-classification", hyperparameters={"epochs": 1, "patience": 0,
                                                                            "batch_size": 16}, idempotency_key="e2e-job")
    assert again["id"] == job["id"] and Job.objects.count() == 1
    with pytest.raises(WaitTimeout):
        client.wait(job, timeout=0.01, poll=0.01)

    waited = cli(portal, "wait", str(job["id"]), "--json", "--poll", "0.5", "--timeout", "240", timeout=300)
    assert waited.returncode == 0, waited.stderr + worker.output()[-3000:]
    final = json.loads(waited.stdout)
    assert final["status"] == "succeeded" and final["progress"] == 1.0

    out = tmp_path / "out"
    downloaded = cli(portal, "download", str(job["id"]), "--kind", "model", "-o", str(out), "--json")
    assert downloaded.returncode == 0, downloaded.stderr
    model = Path(json.loads(downloaded.stdout)["path"])
    assert model.parent == out and zipfile.is_zipfile(model)
    predictions = client.download(job, "predictions", tmp_path / "predictions.csv", name="predictions.csv")
    assert predictions.read_bytes().startswith(b"id,")
    evaluation = cli(portal, "download", str(job["id"]), "--kind", "predictions", "--name", "evaluation.npz",
                     "-o", str(out), "--json")
    assert zipfile.is_zipfile(json.loads(evaluation.stdout)["path"]), evaluation.stderr  # an .npz is a zip
    # The model the runner trained answers predictions for new records.
    answer = client.predict(job, ["ACGTTGACGTCAACGTACGTACGTACGTAC", {"id": "x", "input": "TTTTGGGGCCCCAAAA"}])
    assert [a["id"] for a in answer] == ["0", "x"] and {a["prediction"] for a in answer} <= {"0", "1"}
    assert client.wait(job, timeout=5)["status"] == "succeeded"


def test_cli_upload_lists_paginates_cancels_and_exit_codes(
    portal: Portal, broker, tmp_path: Path, request: pytest.FixtureRequest,  # noqa: ANN001
) -> None:
    m = portal.membership
    path = tmp_path / "small.csv"
    path.write_bytes(planted_motif_csv(20, length=30))
    uploaded = cli(portal, "upload", str(path), "--name", "small", "--lab", m.lab.slug, "--modality", "dna",
                   "--mapping", json.dumps(MAPPING), "--chunk-size", "0.001", "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    dataset = json.loads(uploaded.stdout)
    assert dataset["status"] in ("uploaded", "validating") and dataset["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    # Many jobs: the client follows the cursor pages.
    ready = DatasetFactory(owner=m.user, lab=m.lab, status=Dataset.Status.READY)
    JobFactory.create_batch(7, owner=m.user, lab=m.lab, dataset=ready)
    client = Client(portal.url, portal.token)
    request.addfinalizer(client.close)
    assert len(client.jobs(page_size=3)) == 7
    assert len(client.jobs(page_size=3, limit=4)) == 4
    listed = cli(portal, "jobs", "--json", "--dataset", str(ready.pk))
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 7
    datasets = cli(portal, "datasets", "--json", "--modality", "dna")
    assert {d["id"] for d in json.loads(datasets.stdout)} >= {dataset["id"], ready.pk}

    queued = client.submit_job(ready.pk, "dna-classification", hyperparameters={"epochs": 1})
    cancelled = cli(portal, "cancel", str(queued["id"]), "--json")
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "cancelled"
    assert cli(portal, "wait", str(queued["id"])).returncode == 6  # a cancelled job

    # Exit codes name what failed; errors carry the API's code, message and fields.
    assert cli(portal, "jobs", token="lf_nothere_secret").returncode == 3
    missing = cli(portal, "wait", "999999", "--json")
    assert missing.returncode == 4 and json.loads(missing.stdout)["error"]["code"] == "not_found"
    bad = cli(portal, "submit", "--dataset", str(ready.pk), "--task", "dna-classification", "--hp", "epochs=-1")
    assert bad.returncode == 5 and "epochs" in bad.stderr
    assert cli(portal, "upload", str(path), "--lab", m.lab.slug, "--modality", "dna").returncode == 2  # no --name
    with pytest.raises(InvalidInput) as refused:
        client.submit_job(ready.pk, "molecule-regression")
    assert refused.value.status == 400 and "task" in refused.value.fields
    with pytest.raises(NotFound):
        client.job(10**8)
    with pytest.raises(AuthError), Client(portal.url, "lf_nothere_secret") as stranger:
        stranger.datasets()
