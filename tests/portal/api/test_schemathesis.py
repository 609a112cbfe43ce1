"""Schemathesis against the live OpenAPI schema (`/api/schema/`, served by our WSGI app in process)
with a valid token: at least MIN_CASES generated requests spread over every operation, no 5xx, no
status code the schema does not document, and every response matches the schema (status-specific
body, content type)."""

from __future__ import annotations

import functools
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
from django.core import signals
from django.core.files.base import ContentFile
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_hypothesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from portal.accounts.models import Membership
from portal.accounts.services import api_token_create
from portal.datasets.models import Dataset
from portal.datasets.services import upload_session_create
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import MetricPoint, Prediction, Result
from portal.results.services import artifact_create
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

# At least this many cases per run (issue 25), spread evenly over the operations; raise it with
# SCHEMATHESIS_MIN_CASES for a longer hunt. Each case is one in-process request (a few ms).
MIN_CASES = int(os.environ.get("SCHEMATHESIS_MIN_CASES", "2000"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]


@pytest.fixture
def api_schema(db):  # noqa: ANN001, ANN201 - schemathesis's lazy schema fixture
    # Requests run in process inside the test's transaction: like Django's test client, keep the
    # end-of-request hook from closing the test's database connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@dataclass
class World:
    """A lab member's real objects; generated cases point at them half of the time (random ids are 404s)."""

    token: str
    ids: dict[str, object]


@pytest.fixture
def world(db, tmp_path: Path) -> World:  # noqa: ANN001
    membership = MembershipFactory(role=Membership.Role.OWNER)
    user, lab = membership.user, membership.lab
    dataset = DatasetFactory(owner=user, lab=lab, status=Dataset.Status.READY, original_filename="d.csv",
                             original_file=ContentFile(b"sequence,label\nACGT,1\nTTGA,0\n", name="d.csv"))
    job = JobFactory(owner=user, lab=lab, dataset=dataset, status=Job.Status.SUCCEEDED, progress=1.0)
    MetricPoint.objects.bulk_create([MetricPoint(job=job, split="train", name="loss", step=i, epoch=1, value=1 / i)
                                     for i in range(1, 30)])
    Result.objects.create(job=job, baseline_metrics={"accuracy": 0.5}, optimized_metrics={"accuracy": 0.5})
    report = tmp_path / "metrics.json"
    report.write_text('{"accuracy": 0.5}')
    artifact = artifact_create(job_id=job.pk, kind="report", path=report)
    upload = upload_session_create(owner=user, lab=lab, name="u", filename="u.csv", modality="dna", size_bytes=100)
    spare, _ = api_token_create(user=user, name="spare")  # the one a generated revoke may hit
    # A finished file prediction (its CSV downloadable). The job holds no model, so generated predict
    # requests are refused (409) before anything waits for a worker.
    csv = tmp_path / "predictions.csv"
    csv.write_text("id,line,prediction,prob_0,prob_1\n0,2,1,0.2,0.8\n")
    prediction = Prediction.objects.create(uid=uuid.uuid4(), job=job, owner=user, model_artifact=artifact,
                                           output=Prediction.Output.FILE, status=Prediction.Status.RUNNING,
                                           attempts=1)
    result_services.prediction_succeed(prediction_id=prediction.pk, attempt=1, n_records=1, result_path=csv)
    return World(token=api_token_create(user=user, name="schemathesis")[1], ids={
        "/datasets/": dataset.pk, "/jobs/": job.pk, "artifact_id": artifact.pk, "uid": str(upload.uid),
        "/tokens/": spare.pk, "/predictions/": prediction.pk,
    })


def _aim(case, real: bool, world: World):  # noqa: ANN001, ANN202
    """Point the case's path parameters (and a new job's dataset) at real objects."""
    if not real:
        return case
    params = case.path_parameters or {}
    for name in list(params):
        if name in ("artifact_id", "uid"):
            params[name] = world.ids[name]
        elif name == "id":
            params[name] = next(v for k, v in world.ids.items() if k.startswith("/") and k in case.path)
    if case.path == "/api/v1/jobs/" and case.method.upper() == "POST" and isinstance(case.body, dict):
        case.body["dataset"] = world.ids["/datasets/"]
    return case


def test_schemathesis_api_conforms_to_its_schema(api_schema, world: World) -> None:  # noqa: ANN001
    """Every operation, each with its share of the cases; an operation whose inputs run out early
    (few parameters) leaves its share to a second round over the others. The failures of all
    operations are reported together. (Driven through the Python API: schemathesis's lazy pytest
    fixture reads a pytest-internal attribute that pytest 9 no longer has.)"""
    headers = {"Authorization": f"Bearer {world.token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 33
    cases = 0

    def run(operation, max_examples: int, seed: int) -> int:  # noqa: ANN001
        ran = 0

        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=seed == 0, database=None)
        @given(case=st.builds(functools.partial(_aim, world=world), operation.as_strategy(), st.booleans()))
        def check(case) -> None:  # noqa: ANN001
            nonlocal ran
            ran += 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        if seed:
            check = seed_hypothesis(seed)(check)
        try:
            check()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a FailureGroup; collected, reported with the operation
            failures.append(f"{operation.method.upper()} {operation.path}:\n{exc}")
        return ran

    share = -(-MIN_CASES // len(operations))
    for operation in operations:
        cases += run(operation, share, seed=0)
    for round_ in range(1, 4):  # top up from the operations with the most inputs, new seeds each round
        if cases >= MIN_CASES or failures:
            break
        for operation in operations:
            if cases >= MIN_CASES:
                break
            cases += run(operation, share, seed=round_)
    print(f"schemathesis: {cases} cases over {len(operations)} operations")
    assert not failures, "\n\n".join(failures)
    assert cases >= MIN_CASES, f"only {cases} cases ran"
