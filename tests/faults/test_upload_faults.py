"""Uploads survive a broker that is down: accepted through HTTP, API and web form alike (no 500), kept `uploaded` with no
dispatch recorded, and validated by a real worker once the broker answers, either because the same
upload is retried or because the periodic dataset sweep sends it."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from portal.config.celery import HANDLER_DISPATCH_PENDING_DATASETS, QUEUE_CPU, app
from portal.datasets.models import Dataset
from tests.portal.api.conftest import token_client
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import planted_motif_csv, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broker_down_upload_is_accepted_and_validated_once_the_broker_answers(
    start_worker, tmp_path: Path, monkeypatch  # noqa: ANN001
) -> None:
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    # Celery reads CELERY_BROKER_URL from the environment: point this process at a port where no
    # broker listens yet, and drop pooled connections to the usual one.
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app._after_fork()
    membership = MembershipFactory()
    client = token_client(membership.user)

    def upload(name: str, seed: int):  # noqa: ANN202
        return client.post("/api/v1/datasets/", {
            "file": ContentFile(planted_motif_csv(40, seed=seed), name=f"{name}.csv"), "name": name,
            "lab": membership.lab.slug, "modality": "dna",
            "mapping": '{"input_cols": ["sequence"], "target_cols": ["label"], "task": "dna-classification"}',
        }, format="multipart")

    server = None
    try:
        first = upload("retried", seed=1)
        assert first.status_code == 201, first.content[:2000]
        swept = upload("swept", seed=2)
        assert swept.status_code == 201, swept.content[:2000]
        # The web form too: redirected to the dataset's page, not a 500.
        browser = Client()
        browser.force_login(membership.user)
        form = browser.post(reverse("web:dataset_upload"), {
            "file": SimpleUploadedFile("form.csv", planted_motif_csv(40, seed=3), content_type="text/csv"),
            "name": "form", "lab": membership.lab.slug, "modality": "dna", "task": "dna-classification",
            "input_cols": "sequence", "target_cols": "label", "id_col": "", "group_col": "", "split_col": "",
            "policy": "strict", "visibility": "lab", "description": "",
        })
        web = Dataset.objects.get(lab=membership.lab, name="form")
        assert form.status_code == 302 and form.url == reverse("web:dataset_detail", args=[web.pk])
        for pk in (first.json()["id"], swept.json()["id"], web.pk):
            row = Dataset.objects.get(pk=pk)
            assert row.status == Dataset.Status.UPLOADED and row.dispatched_at is None and row.original_file
        # The same upload retried while the broker is still down: the same row, still no 500.
        again = upload("retried", seed=1)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]

        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
        wait_for(lambda: _answers(port), 30, "the broker to answer")
        worker = start_worker(CELERY_BROKER_URL=url)
        # A retry once the broker answers sends the validation again at once.
        retried = upload("retried", seed=1)
        assert retried.status_code == 200 and retried.json()["id"] == first.json()["id"]
        wait_for(lambda: Dataset.objects.get(pk=first.json()["id"]).status in ("ready", "invalid"), 180,
                 "the retried upload's validation", worker)
        assert Dataset.objects.get(pk=first.json()["id"]).status == Dataset.Status.READY
        # The others wait for the periodic sweep (as beat sends it), run by the worker.
        waiting = [swept.json()["id"], web.pk]
        for pk in waiting:
            assert Dataset.objects.get(pk=pk).status == Dataset.Status.UPLOADED
            Dataset.objects.filter(pk=pk).update(created_at=Dataset.objects.get(pk=pk).created_at - timedelta(minutes=1))
        app.send_task(HANDLER_DISPATCH_PENDING_DATASETS, queue=QUEUE_CPU)
        wait_for(lambda: all(Dataset.objects.get(pk=pk).status in ("ready", "invalid") for pk in waiting), 180,
                 "the swept uploads' validation", worker)
        for pk in waiting:
            row = Dataset.objects.get(pk=pk)
            assert row.status == Dataset.Status.READY and row.dispatched_at is not None, row.validation_report
    finally:
        monkeypatch.undo()
        app._after_fork()  # back to this run's broker
        _stop(server)


def _stop(server: subprocess.Popen | None) -> None:
    if server is not None:
        server.terminate()
        server.wait(timeout=10)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
