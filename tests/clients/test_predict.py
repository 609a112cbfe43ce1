"""`Client.predict`, `Client.predict_file` and `labformer predict` against a live portal and a real Celery
worker, with a finished job holding a tiny model trained by the mlcore recipe."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from labformer_client import AuthError, Client, InvalidInput, NotFound, WaitTimeout
from portal.accounts.services import api_token_create, api_token_revoke
from portal.results.models import Prediction
from tests.clients.conftest import Portal
from tests.clients.test_client import cli
from tests.portal.api.conftest import TrainedModel
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import planted_motif_csv

pytestmark = pytest.mark.django_db(transaction=True)
SEQS = ["ACGTTTGACGTCAAGGCTAACGTTAGCATCGATCGATCGA", "TTTTGGGGCCCCAAAATTTTGGGGCCCCAAAATTTTGGGG"]


def test_client_and_cli_predict_inline_large_and_files(
    portal: Portal, finished_job, trained_model: TrainedModel, start_worker, tmp_path: Path,  # noqa: ANN001
    request: pytest.FixtureRequest,
) -> None:
    from mlcore.modeldir import model_load

    job = finished_job(portal.membership)
    client = Client(portal.url, portal.token)
    request.addfinalizer(client.close)
    with pytest.raises(WaitTimeout):  # no worker yet: the 202 is polled until the timeout
        client.predict(job.pk, SEQS, wait=0, timeout=0.5, poll=0.1)
    worker = start_worker()
    client.wait_prediction(Prediction.objects.get().pk, timeout=120, poll=0.2)  # the first one is answered now

    expected = model_load(trained_model.baseline_dir).predict(SEQS)
    answer = client.predict(job.pk, [{"id": "first", "input": SEQS[0]}, SEQS[1]], idempotency_key="p-1")
    assert [a["id"] for a in answer] == ["first", "1"], worker.output()[-2000:]
    assert [a["prediction"] for a in answer] == [e["prediction"] for e in expected]
    assert answer[0]["probabilities"] == pytest.approx(expected[0]["probabilities"], abs=1e-6)
    assert client.predict(job.pk, SEQS, idempotency_key="p-1") == answer  # the first answer, replayed
    assert Prediction.objects.filter(idempotency_key="p-1").count() == 1
    assert len(client.predict(job.pk, SEQS, model="optimized")) == 2

    # Over the inline limit: the server writes a CSV, the client reads it back into the same shape.
    many = [SEQS[i % 2] for i in range(1001)]
    large = client.predict(job.pk, many, timeout=120, poll=0.2)
    assert len(large) == 1001 and [a["index"] for a in large[:3]] == [0, 1, 2]
    assert large[1]["prediction"] == expected[1]["prediction"]
    assert large[1]["probabilities"] == pytest.approx(expected[1]["probabilities"], abs=1e-5)

    with pytest.raises(InvalidInput) as bad:
        client.predict(job.pk, [SEQS[0], "ACGTQ"])
    assert bad.value.code == "invalid_records" and list(bad.value.fields) == ["records[1]"]
    with pytest.raises(NotFound), Client(portal.url, api_token_create(user=MembershipFactory().user,
                                                                      name="x")[1]) as stranger:
        stranger.predict(job.pk, SEQS)

    data = tmp_path / "new.csv"
    data.write_bytes(planted_motif_csv(12, length=40))
    path = client.predict_file(job.pk, data, tmp_path / "out", timeout=120, poll=0.2)
    rows = list(csv.DictReader(path.open()))
    assert path.parent == tmp_path / "out" and len(rows) == 12 and rows[0]["line"] == "2"

    # The CLI: inline records as JSON, a file into a named CSV, exit codes naming what failed.
    inline = cli(portal, "predict", str(job.pk), "--input", SEQS[0], "--records", json.dumps([SEQS[1]]), "--json")
    assert inline.returncode == 0, inline.stderr
    assert [p["prediction"] for p in json.loads(inline.stdout)] == [e["prediction"] for e in reversed(expected)]
    human = cli(portal, "predict", str(job.pk), "--input", SEQS[0])
    assert human.returncode == 0 and expected[0]["prediction"] in human.stdout and "p=" in human.stdout
    out = tmp_path / "cli.csv"
    filed = cli(portal, "predict", str(job.pk), "--file", str(data), "-o", str(out), "--poll", "0.2", "--json")
    assert filed.returncode == 0, filed.stderr
    assert json.loads(filed.stdout)["path"] == str(out) and out.read_text().startswith("id,line,prediction,prob_0")
    broken = tmp_path / "broken.csv"
    broken.write_text("sequence,label\nACGT,1\nACGTZ,0\n")
    refused = cli(portal, "predict", str(job.pk), "--file", str(broken), "--poll", "0.2", "-o", str(tmp_path))
    assert refused.returncode == 5 and "line 3" in refused.stderr and "'Z'" in refused.stderr
    assert cli(portal, "predict", str(job.pk), "--input", "ACGTQ").returncode == 5
    assert cli(portal, "predict", str(job.pk)).returncode == 2  # nothing to predict
    assert cli(portal, "predict", "999999", "--input", SEQS[0]).returncode == 4
    token, secret = api_token_create(user=portal.membership.user, name="old")
    api_token_revoke(user=portal.membership.user, token_id=token.pk)
    assert cli(portal, "predict", str(job.pk), "--input", SEQS[0], token=secret).returncode == 3
    with pytest.raises(AuthError), Client(portal.url, secret) as revoked:
        revoked.predict(job.pk, SEQS)
    assert {p["status"] for p in client.predictions(job=job.pk)} == {"succeeded", "failed"}
