"""CSV formula injection: record ids (and any text cell) starting with =, +, -, @, a tab or a CR are
written with a leading ' in every CSV the workers and the portal produce — a job's predictions.csv, a
prediction's result CSV, the dashboards' downloads — while numbers, even negative ones, stay numbers."""

from __future__ import annotations

import csv
import io
import random

import pytest
from django.core.files.base import ContentFile

from mlcore.csvsafe import FORMULA_START, csv_cell
from portal.dashboards.common import figure_to_csv
from portal.dashboards.dataset_explorer import Molecule, molecules_csv
from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Artifact, Prediction
from tests.portal.factories import DatasetFactory, MembershipFactory
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PAYLOADS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(1)",
            "\t=1+1", "\r=1+1"]


def _record_id(i: int) -> str:
    if i % 7 == 6:
        return f"-{i}.5"  # a plain negative number: must stay as it is
    return f"{PAYLOADS[i % len(PAYLOADS)]}#{i}"


def _sequence(rng: random.Random, label: int) -> str:
    seq = [rng.choice("ACGT") for _ in range(40)]
    if label:
        seq[5:13] = "TTGACGTC"
    return "".join(seq)


def _dangerous(cell: str) -> bool:
    return cell.startswith(FORMULA_START) and csv_cell(cell) != cell


def _assert_neutralized(text: str, id_column: int = 0) -> list[str]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    ids = [row[id_column] for row in rows[1:]]
    assert ids and not any(_dangerous(cell) for row in rows for cell in row), rows[:5]
    return ids


def test_csv_injection_ids_neutralized_in_job_and_prediction_csvs(start_worker) -> None:  # noqa: ANN001
    rng = random.Random(0)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # the upload itself, written raw on purpose
    writer.writerow(["id", "sequence", "label"])
    for i in range(200):
        writer.writerow([_record_id(i), _sequence(rng, i % 2), i % 2])
    membership = MembershipFactory()
    dataset = DatasetFactory(
        owner=membership.user, lab=membership.lab, modality="dna", status=Dataset.Status.READY,
        original_file=ContentFile(buffer.getvalue().encode(), name="evil.csv"),
        schema={"input_cols": ["sequence"], "target_cols": ["label"], "id_col": "id"},
    )
    worker = start_worker()
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 1, "patience": 0})
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, 240, "the job to finish", worker)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error_message + job.error_traceback
    with Artifact.objects.get(job=job, kind="predictions", file__endswith=".csv").file.open("rb") as fh:
        ids = _assert_neutralized(fh.read().decode())
    assert any(i.startswith("'=HYPERLINK") for i in ids) and any(i.startswith("'-2+3") for i in ids)
    assert any(i.startswith("'\t") for i in ids) or any(i.startswith("'\r") for i in ids)
    negatives = [i for i in ids if i.endswith(".5")]
    assert negatives and all(i.startswith("-") for i in negatives)  # numbers untouched

    # A large batch is answered as a CSV file written by the worker.
    records = [{"id": _record_id(i), "input": _sequence(rng, i % 2)} for i in range(1100)]
    prediction = result_services.prediction_create(user=dataset.owner, job=job, records=records)
    assert prediction.output == Prediction.Output.FILE
    wait_for(lambda: Prediction.objects.get(pk=prediction.pk).status in ("succeeded", "failed"), 180,
             "the prediction", worker)
    prediction.refresh_from_db()
    assert prediction.status == "succeeded", prediction.error_message
    with prediction.result_file.open("rb") as fh:
        ids = _assert_neutralized(fh.read().decode())
    assert len(ids) == 1100 and ids[0] == "'" + records[0]["id"] and ids[6] == "-6.5"


def test_csv_injection_dashboard_downloads_neutralized() -> None:
    figure = {"data": [{"name": "=cmd|'/C calc'!A0", "x": [-1.5, 2], "y": [3, -4],
                        "text": ["@SUM(A1)", "-1.5"], "customdata": ["+1+1", "plain"]}]}
    text = figure_to_csv(figure)
    rows = list(csv.reader(io.StringIO(text)))
    assert not any(_dangerous(cell) for row in rows for cell in row), rows
    assert rows[1][0] == "'=cmd|'/C calc'!A0" and "'@SUM(A1)" in rows[1] and "'+1+1" in rows[1]
    assert "-1.5" in rows[1] and "-4" in rows[2] and "-1.5" in rows[2]  # numbers stay numbers
    molecules = molecules_csv([Molecule(line=2, smiles="=HYPERLINK(\"x\")", target="-0.25", svg="")])
    assert molecules.splitlines()[1] == "2,\"'=HYPERLINK(\"\"x\"\")\",-0.25"
