"""`labformer download` names files as the job page does and says what it wrote; `labformer jobs`
into a pipe that closes early ends quietly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from portal.results.models import Artifact
from portal.results.services import artifact_create
from tests.clients.conftest import Portal
from tests.clients.test_client import LABFORMER, cli
from tests.portal.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_kinds_are_the_job_pages_names(portal: Portal, finished_job, trained_model, tmp_path: Path) -> None:  # noqa: ANN001
    job = finished_job(portal.membership)  # baseline model, then the optimized one (newer)
    csv = tmp_path / "predictions.csv"
    csv.write_text("id,line,label,prediction\n0,2,1,1\n")
    npz = tmp_path / "evaluation-optimized.npz"
    npz.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    artifact_create(job_id=job.pk, kind=Artifact.Kind.PREDICTIONS, path=csv)
    artifact_create(job_id=job.pk, kind=Artifact.Kind.PREDICTIONS, path=npz, metadata={"variant": "optimized"})
    out = tmp_path / "out"

    model = cli(portal, "download", str(job.pk), "--kind", "model", "-o", str(out))
    assert model.returncode == 0, model.stderr
    written = out / f"job{job.pk}-model.zip"
    assert _sha(written) == _sha(trained_model.baseline_zip)  # the baseline, not the newer optimized one
    assert model.stdout.strip() == f"wrote {written} ({written.stat().st_size:,} bytes): the model of job {job.pk}"

    optimized = cli(portal, "download", str(job.pk), "--kind", "model-optimized", "-o", str(out), "--json")
    assert optimized.returncode == 0, optimized.stderr
    answer = json.loads(optimized.stdout)
    assert _sha(Path(answer["path"])) == _sha(trained_model.optimized_zip)
    assert answer["bytes"] == trained_model.optimized_zip.stat().st_size and answer["kind"] == "model-optimized"

    predictions = cli(portal, "download", str(job.pk), "--kind", "predictions", "-o", str(out), "--json")
    assert predictions.returncode == 0, predictions.stderr
    path = Path(json.loads(predictions.stdout)["path"])
    assert path.suffix == ".csv" and path.read_text().startswith("id,line,label,prediction")

    # A name the page does not use is a usage error naming the ones it does.
    wrong = cli(portal, "download", str(job.pk), "--kind", "optimized-model", "-o", str(out))
    assert wrong.returncode == 2 and "model-optimized" in wrong.stderr and "predictions" in wrong.stderr
    # One the job has not stored: not found, listing what it has.
    missing = cli(portal, "download", str(job.pk), "--kind", "attention", "-o", str(out))
    assert missing.returncode == 4
    assert "has no 'attention' file; it has: evaluation-optimized, model, model-optimized, predictions" in missing.stderr


def test_the_api_names_each_artifact_as_the_page_does(portal: Portal, finished_job) -> None:  # noqa: ANN001
    from labformer_client import Client

    job = finished_job(portal.membership)
    with Client(portal.url, portal.token) as client:
        rows = {a["download_kind"]: a["label"] for a in client.artifacts(job.pk)}
    assert rows == {"model": "Model", "model-optimized": "Model, optimized (int8)"}


def test_jobs_into_a_pipe_that_closes_early_is_no_error(portal: Portal) -> None:
    m = portal.membership
    JobFactory.create_batch(3, owner=m.user, lab=m.lab)
    command = [str(LABFORMER)] if LABFORMER.exists() else ["python", "-m", "labformer_client"]
    env = {**os.environ, "LABFORMER_URL": portal.url, "LABFORMER_TOKEN": portal.token}
    # The reader goes away before the CLI has its answer (as `| head` does once it has its lines).
    proc = subprocess.Popen([*command, "jobs"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert stderr == ""


def test_job_shows_a_running_jobs_phase(portal: Portal) -> None:
    from portal.jobs import services as job_services
    from portal.jobs.models import Job

    m = portal.membership
    job = JobFactory(owner=m.user, lab=m.lab, status=Job.Status.RUNNING, attempts=1)
    job_services.job_phase_set(job_id=job.pk, phase="optimizing", index=5, count=5)
    shown = cli(portal, "job", str(job.pk))
    assert shown.returncode == 0 and shown.stdout.rstrip().endswith("[optimizing 5/5]"), shown.stdout + shown.stderr
