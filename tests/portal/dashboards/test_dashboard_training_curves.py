"""Live training curves: the data they are drawn from, and access through the real Dash endpoints."""

from __future__ import annotations

import json

import pytest

from portal.accounts.models import Visibility
from portal.dashboards import training_curves as tc
from portal.dashboards.common import figure_rows
from portal.jobs.models import Job
from portal.results.services import Point, metric_points_record
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.factories import JobFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

APP = tc.APP_NAME
OUTPUTS = [f"{tc.LOSS_GRAPH}.figure", f"{tc.METRIC_GRAPH}.figure", f"{tc.STATUS_ID}.children", f"{tc.TICK_ID}.disabled"]
SECRET = 0.123456789  # a loss value only the private job has


def _job(**kwargs) -> Job:
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, **kwargs)
    metric_points_record(
        job_id=job.pk,
        points=[
            Point("train", "loss", 1, 0, 0.9),
            Point("train", "loss", 2, 0, SECRET),
            Point("train", "epoch_loss", 2, 1, 0.5),
            Point("val", "loss", 2, 1, 0.6),
            Point("val", "roc_auc", 2, 1, 0.71),
            Point("val", "roc_auc", 4, 2, 0.83),
            Point("val", "accuracy", 4, 2, 0.8),
        ],
    )
    return job


def _ys(figure) -> list:
    columns, rows = figure_rows(figure)
    return [row[columns.index("value")] for row in rows] if "value" in columns else []


def _refresh(client, job_id) -> dict:
    return dash.response_props(
        dash.update(client, APP, outputs=OUTPUTS, inputs={"store.data": {"job_id": job_id}, "tick.n_intervals": 3})
    )


def test_curve_data_takes_loss_and_primary_metric_by_split():
    job = _job(status=Job.Status.RUNNING)
    data = tc.curve_data(job)
    assert [c.label for c in data.loss] == ["Train (per step)", "Train (epoch mean)", "Validation"]
    assert data.loss[0].steps == [1, 2] and data.loss[0].values == [0.9, SECRET]
    assert data.metric == "roc_auc"  # the binary task's primary metric, not accuracy
    assert [(c.label, c.steps, c.values) for c in data.metric_curves] == [("Validation", [2, 4], [0.71, 0.83])]


def test_curve_data_thins_long_runs_keeping_ends():
    job = _job()
    metric_points_record(job_id=job.pk, points=[Point("train", "loss", s, 0, float(s)) for s in range(3, 500)])
    data = tc.curve_data(job, max_points=50)
    train = data.loss[0]
    assert len(train.steps) == 50 and train.steps[0] == 1 and train.steps[-1] == 499


def test_owner_gets_curves_and_refresh_stops_when_finished(client):
    job = _job(status=Job.Status.RUNNING)
    client.force_login(job.owner)
    props = _refresh(client, job.pk)
    loss = props[tc.LOSS_GRAPH]["figure"]
    assert SECRET in _ys(loss)
    assert "Running" in props[tc.STATUS_ID]["children"]
    assert props[tc.TICK_ID]["disabled"] is False
    assert loss["layout"]["xaxis"]["title"]["text"] == "Training step"
    metric = props[tc.METRIC_GRAPH]["figure"]
    assert metric["layout"]["yaxis"]["title"]["text"] == "ROC AUC (0–1)"

    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    assert _refresh(client, job.pk)[tc.TICK_ID]["disabled"] is True


def test_queued_job_says_what_happens_next(client):
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.QUEUED)
    client.force_login(job.owner)
    props = _refresh(client, job.pk)
    assert "Queued" in json.dumps(props[tc.LOSS_GRAPH]["figure"])
    assert props[tc.TICK_ID]["disabled"] is False


@pytest.mark.parametrize("who", ["other_lab", "anonymous"])
def test_private_job_is_unreachable_through_the_dash_endpoints(client, who):
    job = _job(visibility=Visibility.PRIVATE, status=Job.Status.RUNNING)
    if who == "other_lab":
        client.force_login(MembershipFactory().user)
    response = dash.update(client, APP, outputs=OUTPUTS, inputs={"store.data": {"job_id": job.pk}, "tick.n_intervals": 1})
    if who == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert dash.layout(client, APP).status_code == 302
        return
    body = dash.payload_text(response)
    assert str(SECRET) not in body and "0.71" not in body
    props = dash.response_props(response)
    assert "not found" in props[tc.STATUS_ID]["children"]
    assert props[tc.TICK_ID]["disabled"] is True
    # The CSV download rebuilds from the server: nothing of the job either.
    download = dash.update(
        client, APP, outputs=[f"{tc.LOSS_GRAPH}-download.data"],
        inputs={f"{tc.LOSS_GRAPH}-csv.n_clicks": 1}, state={"store.data": {"job_id": job.pk}},
    )
    csv_text = dash.response_props(download)[f"{tc.LOSS_GRAPH}-download"]["data"]["content"]
    assert csv_text.strip() == "trace"


def test_lab_member_sees_lab_job_but_not_private_one(client):
    lab_job = _job(visibility=Visibility.LAB)
    private_job = JobFactory(owner=lab_job.owner, lab=lab_job.lab, visibility=Visibility.PRIVATE)
    metric_points_record(job_id=private_job.pk, points=[Point("train", "loss", 1, 0, 0.4242)])
    colleague = MembershipFactory(lab=lab_job.lab).user
    client.force_login(colleague)
    assert SECRET in _ys(_refresh(client, lab_job.pk)[tc.LOSS_GRAPH]["figure"])
    assert "0.4242" not in json.dumps(_refresh(client, private_job.pk)[tc.LOSS_GRAPH]["figure"]["data"])


def test_csv_download_has_the_owner_data(client):
    job = _job()
    client.force_login(job.owner)
    response = dash.update(
        client, APP, outputs=[f"{tc.LOSS_GRAPH}-download.data"],
        inputs={f"{tc.LOSS_GRAPH}-csv.n_clicks": 1}, state={"store.data": {"job_id": job.pk}},
    )
    data = dash.response_props(response)[f"{tc.LOSS_GRAPH}-download"]["data"]
    assert data["filename"] == f"job-{job.pk}-training-loss.csv"
    lines = data["content"].splitlines()
    assert lines[0] == "trace,step,value,epoch"
    assert f"Train (per step),2,{SECRET},0" in lines


def test_page_embedding_hands_the_job_to_the_dashboard_and_only_to_that_session(client):
    job = _job(visibility=Visibility.PRIVATE)
    client.force_login(job.owner)
    html, cache_id = dash.render_embedding(client, job.owner, "dashboards/job_live.html", {"job": job})
    assert cache_id and f"/django_plotly_dash/app/{APP}/initial/{cache_id}/" in html
    layout = dash.layout(client, APP, cache_id=cache_id)
    assert layout.status_code == 200
    assert dash.store_of_layout(layout.json()) == {"job_id": job.pk}
    # Another user's browser cannot use the owner's embedding id.
    other = MembershipFactory().user
    client.force_login(other)
    assert dash.layout(client, APP, cache_id=cache_id).status_code == 404


def test_unknown_dashboard_is_404(client):
    client.force_login(UserFactory())
    assert client.get("/django_plotly_dash/app/no_such_dashboard/_dash-layout").status_code == 404
