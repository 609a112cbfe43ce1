"""Dataset validation as the worker runs it: ready / invalid with line-exact problems, the canonical
copy stored, unreadable files and crashes ending invalid (never stuck validating); then a demo
dataset uploaded, validated and trained on through a real worker."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from portal.accounts.models import Lab
from portal.datasets.models import Dataset
from portal.datasets.services import dataset_create
from portal.jobs import services as job_services
from portal.jobs.models import Job
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import wait_for
from workers.validation import dataset_validate_run

# file lines: 1 header, 2..10 rows; lines 4 (unclosed ring) and 8 (pentavalent carbon) are broken SMILES,
# line 6 has a non-numeric target
MOLECULES = b"smiles,target\nCCO,1.0\nc1ccccc1,2.0\nC1CC,3.0\nCC(=O)O,0.5\nCCN,x\nCCCl,1.1\nC(C)(C)(C)(C)C,0.2\nCCOC,0.9\nO=C=O,0.3\n"


def _upload(content: bytes, *, policy: str, schema: dict, name: str = "mols.csv") -> Dataset:
    membership = MembershipFactory()
    return dataset_create(owner=membership.user, lab=membership.lab, name=name, modality="smiles",
                          file=ContentFile(content), filename=name, policy=policy, schema=schema, validate=False)


@pytest.mark.django_db
def test_skip_policy_drops_bad_records_and_lists_their_lines() -> None:
    dataset = _upload(MOLECULES, policy="skip", schema={"task": "molecule-regression"})
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.READY
    dataset.refresh_from_db()
    report = dataset.validation_report
    assert sorted(p["line"] for p in report["problems"]) == [4, 6, 8]
    assert {p["column"] for p in report["problems"]} == {"smiles", "target"}
    assert dataset.row_count == 6 and report["rows"] == 9 and report["invalid"] == 3
    # The canonical copy holds the valid records, canonicalized, with their original lines.
    with dataset.canonical_file.open("rb") as fh:
        table = pq.read_table(fh)
    assert table.num_rows == 6 and table.column("source_line").to_pylist() == [2, 3, 5, 7, 9, 10]
    assert "c1ccccc1" in table.column("smiles").to_pylist()
    # The original is untouched, byte for byte.
    with dataset.original_file.open("rb") as fh:
        assert fh.read() == MOLECULES


@pytest.mark.django_db
def test_strict_policy_makes_the_dataset_invalid_and_stores_no_canonical_copy() -> None:
    dataset = _upload(MOLECULES, policy="strict", schema={"task": "molecule-regression"})
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.INVALID
    dataset.refresh_from_db()
    assert not dataset.canonical_file and dataset.validation_report["totals"]


@pytest.mark.django_db
def test_an_unreadable_mapping_is_invalid_with_the_reason() -> None:
    dataset = _upload(MOLECULES, policy="strict", schema={"input_cols": ["molecule"]})
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.INVALID
    dataset.refresh_from_db()
    message = dataset.validation_report["error"]["message"]
    assert "molecule" in message and "mols.csv" in message


@pytest.mark.django_db
def test_a_crash_in_validation_leaves_the_dataset_invalid_with_the_error() -> None:
    dataset = _upload(MOLECULES, policy="strict", schema={})
    default_storage.delete(dataset.original_file.name)  # the storage lost the file under our feet
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.INVALID
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID
    assert "FileNotFoundError" in dataset.validation_report["error"]["message"]
    assert "Traceback" in dataset.validation_report["error"]["traceback"]


@pytest.mark.django_db(transaction=True)
def test_worker_validates_a_demo_upload_and_trains_on_it(start_worker) -> None:  # noqa: ANN001
    worker = start_worker()
    membership = MembershipFactory()
    lab: Lab = membership.lab
    call_command("load_demo_data", lab=lab.slug, user=membership.user.username, only=["breast-cancer-wisconsin"])
    dataset = Dataset.objects.get(lab=lab)
    wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status in ("ready", "invalid"), 120, "validation", worker)
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.READY, dataset.validation_report
    assert dataset.row_count == 569 and dataset.canonical_file
    job = job_services.job_submit(user=membership.user, dataset=dataset, task_key="tabular-classification",
                                  preset="tiny", hyperparameters={"epochs": 3, "patience": 0})
    wait_for(lambda: Job.objects.get(pk=job.pk).status in ("succeeded", "failed"), 180, "the job", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback
    assert job.result.baseline_metrics["roc_auc"] > 0.8
