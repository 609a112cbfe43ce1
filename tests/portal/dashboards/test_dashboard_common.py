"""The dashboards' shared pieces: reading ids from the (untrusted) store, loading through the
selectors, the primary metric, figures to CSV."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from portal.accounts.models import Visibility
from portal.dashboards import common
from portal.results.services import result_record
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), ("7", 7), (0, None), (-3, None), (True, None), ("7 OR 1=1", None), (None, None), ([1], None), (2.0, None)],
)
def test_as_id_takes_only_positive_integers(value, expected):
    assert common.as_id(value) == expected


@pytest.mark.django_db
def test_loading_through_the_selectors_drops_what_the_user_may_not_see():
    member = MembershipFactory()
    mine = JobFactory(owner=member.user, lab=member.lab, visibility=Visibility.PRIVATE)
    other = MembershipFactory()
    hidden = JobFactory(owner=other.user, lab=other.lab, visibility=Visibility.PRIVATE)
    public = JobFactory(owner=other.user, lab=other.lab, visibility=Visibility.PUBLIC)
    assert common.job_for_user(user=member.user, job_id=mine.pk) == mine
    assert common.job_for_user(user=member.user, job_id=hidden.pk) is None
    assert common.job_for_user(user=member.user, job_id="nonsense") is None
    assert common.job_for_user(user=None, job_id=mine.pk) is None
    ids = [public.pk, hidden.pk, mine.pk, public.pk, "x"]
    assert common.jobs_for_user(user=member.user, job_ids=ids) == [public, mine]
    assert common.jobs_for_user(user=member.user, job_ids=ids, limit=1) == [public]
    assert common.jobs_for_user(user=member.user, job_ids={"a": 1}) == []
    private_dataset = DatasetFactory(owner=other.user, lab=other.lab, visibility=Visibility.PRIVATE)
    assert common.dataset_for_user(user=member.user, dataset_id=private_dataset.pk) is None
    assert common.dataset_for_user(user=other.user, dataset_id=private_dataset.pk) == private_dataset


@pytest.mark.django_db
def test_primary_metric_follows_the_report_then_the_data():
    binary = JobFactory(task_key="dna-classification")
    assert common.primary_metric_for_job(binary) == "roc_auc"
    multi = JobFactory(task_key="dna-classification",
                       dataset__validation_report={"stats": {"target": {"kind": "classification", "n_classes": 4}}})
    assert common.primary_metric_for_job(multi) == "macro_f1"
    reported = JobFactory(task_key="dna-classification")
    result_record(job_id=reported.pk, baseline_metrics={}, compression_report={"primary_metric": "pr_auc"})
    reported.refresh_from_db()
    assert common.primary_metric_for_job(reported) == "pr_auc"
    assert common.primary_metric_for_job(JobFactory(task_key="dna-regression")) == "rmse"


@pytest.mark.django_db
def test_initial_arguments_turn_objects_into_ids():
    jobs = [JobFactory(), JobFactory()]
    data = json.loads(common.initial_arguments(job_ids=jobs, dataset_id=jobs[0].dataset, task="x", none=None))
    assert data == {"store": {"data": {"job_ids": [jobs[0].pk, jobs[1].pk], "dataset_id": jobs[0].dataset.pk,
                                       "task": "x", "none": None}}}


def test_csv_decodes_plotly_typed_arrays_and_keeps_names():
    fig = go.Figure([
        go.Scatter(x=np.arange(3), y=np.array([0.5, np.nan, 1.5]), name="a", text=["p", "q", "r"]),
        go.Bar(x=["u", "v"], y=[1, 2], name="b"),
    ])
    serialized = json.loads(fig.to_json())  # what the browser gets: numpy arrays as base64 typed arrays
    assert isinstance(serialized["data"][0]["y"], dict) and "bdata" in serialized["data"][0]["y"]
    lines = common.figure_to_csv(serialized).splitlines()
    assert lines == ["trace,x,y,text", "a,0,0.5,p", "a,1,,q", "a,2,1.5,r", "b,u,1,", "b,v,2,"]


def test_csv_of_heatmap_is_one_row_per_cell():
    fig = go.Figure(go.Heatmap(z=np.array([[1.0, 2.0], [3.0, 4.0]]), x=["c1", "c2"], y=["r1", "r2"], name="h"))
    columns, rows = common.figure_rows(json.loads(fig.to_json()))
    assert columns == ["trace", "x", "y", "z"]
    assert rows == [["h", "c1", "r1", 1.0], ["h", "c2", "r1", 2.0], ["h", "c1", "r2", 3.0], ["h", "c2", "r2", 4.0]]


def test_empty_figure_is_marked_and_has_no_rows():
    fig = common.empty_figure("Nothing yet.")
    assert common.is_empty_figure(fig) and common.is_empty_figure(json.loads(fig.to_json()))
    assert common.figure_rows(fig) == (["trace"], [])
    assert not common.is_empty_figure(common.style_figure(go.Figure(go.Scatter(x=[1], y=[1])), x_title="x (s)"))


def test_style_keeps_png_button_and_axis_titles():
    fig = common.style_figure(go.Figure(go.Scatter(x=[1], y=[2])), x_title="Epoch", y_title="Loss (nats)", title="t")
    assert fig.layout.xaxis.title.text == "Epoch" and fig.layout.yaxis.title.text == "Loss (nats)"
    config = common.graph_config("loss")
    assert config["toImageButtonOptions"]["format"] == "png" and "toImage" not in config["modeBarButtonsToRemove"]


def test_csv_columns_named_by_the_trace_meta():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[0.5, 0.25], customdata=[[7, "tiny"], [8, "small"]], hovertext=["a<br>b", "c"],
                               name="t", meta={"x": "step", "y": "loss", "customdata": ["job", "preset"]}))
    assert common.figure_to_csv(fig).splitlines() == [
        "trace,step,loss,hovertext,job,preset", "t,1,0.5,a; b,7,tiny", "t,2,0.25,c,8,small"]
