"""Run comparison: the data the overlay and the parallel-coordinates view are built from, and access
through the real Dash endpoints."""

from __future__ import annotations

import json

import pytest

from portal.accounts.models import Visibility
from portal.dashboards import comparison as cmp
from portal.dashboards.common import figure_rows, jobs_for_user
from portal.results.services import Point, metric_points_record, result_record
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

APP = cmp.APP_NAME


def _job(member, *, lr, batch_size=32, auc=None, curve=(), profile="baseline", **kwargs):
    job = JobFactory(
        owner=member.user, lab=member.lab, profile_key=profile,
        config={"preset": "tiny", "hyperparameters": {"lr": lr, "batch_size": batch_size, "epochs": 5}}, **kwargs,
    )
    metric_points_record(job_id=job.pk, points=[Point("val", "roc_auc", 10 * e, e, v) for e, v in curve]
                         + [Point("train", "loss", 1, 0, 1.0)])
    if auc is not None:
        result_record(job_id=job.pk, baseline_metrics={"roc_auc": auc, "accuracy": 0.5})
    return job


@pytest.fixture
def member():
    return MembershipFactory()


def test_parallel_data_keeps_differing_hyperparameters_and_the_metric(member):
    a = _job(member, lr=1e-3, auc=0.8)
    b = _job(member, lr=1e-4, auc=0.7, profile="int8")
    c = _job(member, lr=1e-2)  # no result yet
    jobs = jobs_for_user(user=member.user, job_ids=[a.pk, b.pk, c.pk])
    data = cmp.parallel_data(jobs)
    labels = [d.label for d in data.dimensions]
    assert labels == ["Job", "Profile", "lr", "test roc_auc"]  # batch_size and epochs are shared
    assert data.dimensions[0].ticktext == [f"#{a.pk}", f"#{b.pk}"]
    assert data.dimensions[1].ticktext == ["baseline", "int8"] and data.dimensions[1].values == [0.0, 1.0]
    assert data.dimensions[2].values == [1e-3, 1e-4]
    assert data.dimensions[-1].values == [0.8, 0.7]
    assert data.job_ids == [a.pk, b.pk]
    assert len(data.left_out) == 1 and "no test result yet" in data.left_out[0]


def test_curve_options_are_per_epoch_and_default_to_validation_primary_metric(member):
    a = _job(member, lr=1e-3, curve=[(1, 0.6), (2, 0.7)])
    jobs = [a]
    options = cmp.curve_options(jobs)
    assert [o["value"] for o in options] == ["val:roc_auc"]  # the per-step train loss is not offered
    assert cmp.default_curve(jobs, options) == "val:roc_auc"
    curves = cmp.job_curves(jobs, "val:roc_auc")
    assert curves[0].epochs == [1, 2] and curves[0].values == [0.6, 0.7]


def _draw(client, job_ids, key="val:roc_auc"):
    curves = dash.update(client, APP, outputs=[f"{cmp.CURVES_GRAPH}.figure"],
                         inputs={"store.data": {"job_ids": job_ids}, f"{cmp.CURVE_SELECT}.value": key})
    parallel = dash.update(client, APP, outputs=[f"{cmp.PARALLEL_GRAPH}.figure", f"{cmp.PARALLEL_NOTE}.children"],
                           inputs={"store.data": {"job_ids": job_ids}})
    options = dash.update(client, APP, outputs=[f"{cmp.CURVE_SELECT}.options", f"{cmp.CURVE_SELECT}.value"],
                          inputs={"store.data": {"job_ids": job_ids}})
    return curves, parallel, options


def test_owner_compares_and_another_lab_sees_only_what_it_may(client, member):
    mine = _job(member, lr=1e-3, auc=0.8111, curve=[(1, 0.6111), (2, 0.7)], visibility=Visibility.PRIVATE)
    outsider = MembershipFactory()
    theirs = _job(outsider, lr=5e-4, auc=0.6222, curve=[(1, 0.5222)], visibility=Visibility.LAB)
    public = _job(outsider, lr=2e-3, auc=0.9333, curve=[(1, 0.8333)], visibility=Visibility.PUBLIC)

    client.force_login(member.user)
    curves, parallel, options = _draw(client, [mine.pk, theirs.pk, public.pk])
    body = "".join(dash.payload_text(r) for r in (curves, parallel, options))
    assert "0.6111" in body and "0.8333" in body  # own private job and a public one
    assert "0.5222" not in body and "0.6222" not in body  # another lab's lab-only job
    names = [t["name"] for t in dash.response_props(curves)[cmp.CURVES_GRAPH]["figure"]["data"]]
    assert len(names) == 2

    # Another lab's member asks for the member's private job by id: nothing of it comes back.
    client.force_login(outsider.user)
    curves, parallel, options = _draw(client, [mine.pk])
    body = "".join(dash.payload_text(r) for r in (curves, parallel, options))
    assert "0.6111" not in body and "0.8111" not in body and f'"#{mine.pk}"' not in body
    assert "No jobs to compare" in json.dumps(dash.response_props(curves))
    assert dash.response_props(options)[cmp.CURVE_SELECT]["options"] == []


def test_anonymous_is_sent_to_sign_in(client, member):
    job = _job(member, lr=1e-3, auc=0.8, curve=[(1, 0.6)])
    curves, parallel, options = _draw(client, [job.pk])
    assert {curves.status_code, parallel.status_code, options.status_code} == {302}


def test_csv_of_the_parallel_view_names_jobs_and_categories(client, member):
    a = _job(member, lr=1e-3, auc=0.8)
    b = _job(member, lr=1e-4, auc=0.7, profile="int8")
    client.force_login(member.user)
    response = dash.update(client, APP, outputs=[f"{cmp.PARALLEL_GRAPH}-download.data"],
                           inputs={f"{cmp.PARALLEL_GRAPH}-csv.n_clicks": 1}, state={"store.data": {"job_ids": [a.pk, b.pk]}})
    lines = dash.response_props(response)[f"{cmp.PARALLEL_GRAPH}-download"]["data"]["content"].splitlines()
    assert lines[0] == "trace,Job,Profile,lr,test roc_auc,colour"
    assert lines[1] == f"jobs,#{a.pk},baseline,0.001,0.8,0.8"
    assert lines[2] == f"jobs,#{b.pk},int8,0.0001,0.7,0.7"


def test_template_embeds_the_selected_jobs(client, member):
    a = _job(member, lr=1e-3)
    b = _job(member, lr=1e-4)
    client.force_login(member.user)
    html, cache_id = dash.render_embedding(client, member.user, "dashboards/compare_panels.html", {"jobs": [a, b]})
    assert cache_id
    assert dash.store_of_layout(dash.layout(client, APP, cache_id=cache_id).json()) == {"job_ids": [a.pk, b.pk]}
    html, cache_id = dash.render_embedding(client, member.user, "dashboards/compare_panels.html", {"jobs": []})
    assert cache_id is None and "Select two or more jobs" in html


def test_figure_rows_reads_every_trace():
    fig = cmp.curves_figure([], None)
    assert figure_rows(fig) == (["trace"], [])
