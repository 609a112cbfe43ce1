"""One column mapping from the upload to the model, through a real worker: a DNA file whose columns all
have non-default names, uploaded through the upload page and the API, is stored, validated, trained
and saved as a model directory that reads prediction files with the very same mapping."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from mlcore.columns import ColumnMapping
from mlcore.modeldir import model_load
from portal.accounts.services import api_token_create
from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import planted_motif_csv, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

MAPPING = ColumnMapping(input_cols=("seq",), target_cols=("activity",), id_col="name", group_col="family")


def _renamed_csv(n: int = 160) -> bytes:
    """The planted-motif DNA file with columns name, family, seq, activity (none of them a default)."""
    rows = planted_motif_csv(n, 40).decode().splitlines()[1:]
    out = ["name,family,seq,activity"] + [f"s{i},f{i % 7},{row}" for i, row in enumerate(rows)]
    return ("\n".join(out) + "\n").encode()


def test_the_mapping_from_the_form_and_the_api_reaches_the_model_directory(start_worker, tmp_path: Path) -> None:  # noqa: ANN001
    m = MembershipFactory()
    web = Client()
    web.force_login(m.user)
    response = web.post(reverse("web:dataset_upload"), {
        "file": SimpleUploadedFile("renamed.csv", _renamed_csv(), content_type="text/csv"), "name": "by-form",
        "lab": m.lab.slug, "modality": "dna", "task": "dna-classification", "input_cols": "seq",
        "target_cols": "activity", "id_col": "name", "group_col": " family ", "split_col": "", "policy": "strict",
        "visibility": "lab", "description": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=m.user, name='t')[1]}")
    response = api.post("/api/v1/datasets/", {
        "file": SimpleUploadedFile("renamed.csv", _renamed_csv()), "name": "by-api", "lab": m.lab.slug,
        "modality": "dna", "mapping": json.dumps({**MAPPING.to_dict(), "split_col": None, "task": "dna-classification"}),
    }, format="multipart")
    assert response.status_code == 201, response.json()
    by_form, by_api = Dataset.objects.get(name="by-form"), Dataset.objects.get(name="by-api")
    # The schema stores the mapping's to_dict() (the task beside it), the same from either door.
    assert by_form.schema == by_api.schema == {**MAPPING.to_dict(), "task": "dna-classification"}

    worker = start_worker()
    wait_for(lambda: Dataset.objects.get(pk=by_api.pk).status != Dataset.Status.VALIDATING and
             Dataset.objects.get(pk=by_api.pk).status != Dataset.Status.UPLOADED, 180, "validation", worker)
    by_api.refresh_from_db()
    assert by_api.status == Dataset.Status.READY, by_api.validation_report
    assert ColumnMapping.from_dict(by_api.validation_report["columns"]) == MAPPING  # resolved against the file

    job = job_services.job_submit(user=m.user, dataset=by_api, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 1, "patience": 0})
    assert ColumnMapping.from_dict(job.config["dataset"]["schema"]) == MAPPING  # frozen into the job
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 300, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback

    model = Artifact.objects.get(job=job, kind=Artifact.Kind.MODEL, file__endswith="model.zip")
    with model.file.open("rb") as fh, zipfile.ZipFile(fh) as zf:
        zf.extractall(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert ColumnMapping.from_dict(config["columns"]) == MAPPING
    assert config["columns"]["input_col"] == "seq"  # the key older versions read
    loaded = model_load(tmp_path / "model")
    assert loaded.columns == MAPPING
    new = tmp_path / "new.csv"
    new.write_text("name,seq\nq1,ACGTTTGACGTCACGTACGTACGTACGTACGTACGTACGT\n")
    table = loaded.read(new)  # a prediction file is read with the training mapping: ids from `name`
    assert [(r.id, r.input) for r in table.records] == [("q1", "ACGTTTGACGTCACGTACGTACGTACGTACGTACGTACGT")]
