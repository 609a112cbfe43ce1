"""Evaluation views: the numbers against hand-computed ones and against the job's own test metrics
(jobs whose artifacts the worker's code stored from real tiny models, baseline and int8), and access
through the real Dash endpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlcore.data import TargetEncoder
from mlcore.explain import evaluation_arrays
from portal.accounts.models import Visibility
from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.services import artifact_create
from portal.dashboards import evaluation as ev
from portal.dashboards.common import is_empty_figure
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.dashboards.explain_jobs import call_every_callback, explained_job, trained_run
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

APP = ev.APP_NAME
OUTPUTS = [*(f"{f}.figure" for f in ev.FIGURES), *(f"{f}-box.style" for f in ev.FIGURES),
           f"{ev.SUMMARY_ID}.children", f"{ev.STATUS_ID}.children"]


# --- hand-computed ---------------------------------------------------------------------------------


def test_confusion_and_per_class_accuracy_by_hand():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0, 2])
    assert ev.confusion(y, p, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert np.allclose(ev.per_class_accuracy(y, p, 4)[:3], [0.5, 1.0, 2 / 3])
    assert math.isnan(ev.per_class_accuracy(y, p, 4)[3])  # a class with no tokens


def test_roc_and_pr_aucs_by_hand():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    roc, pr = ev.roc_pr(y, s)
    assert math.isclose(roc.auc, 0.75)  # 3 of the 4 positive-negative pairs are ranked right
    # Average precision: thresholds 0.8 (P 1, R 1/2), 0.4 (P 2/3, R 1/2), 0.35 (P 2/3, R 1):
    # 1/2 * 1 + 0 + 1/2 * 2/3
    assert math.isclose(pr.auc, 0.5 + 1 / 3)
    assert ev.roc_pr(np.array([1, 1]), np.array([0.2, 0.9])) is None  # one class: undefined


def test_calibration_bins_by_hand():
    prob = np.array([0.05, 0.15, 0.12, 0.95, 0.91])
    hit = np.array([0, 1, 0, 1, 1])
    mean_p, freq, counts = ev.calibration(hit, prob, bins=10)
    assert counts.tolist() == [1, 2, 2]
    assert np.allclose(mean_p, [0.05, 0.135, 0.93]) and np.allclose(freq, [0.0, 0.5, 1.0])


def test_regression_numbers_by_hand():
    out = ev.regression_numbers(np.array([1.0, 2.0, 3.0, np.nan]), np.array([1.0, 3.0, 5.0, 4.0]))
    assert out["n"] == 3 and math.isclose(out["mae"], 1.0) and math.isclose(out["rmse"], math.sqrt(5 / 3))
    assert math.isclose(out["r2"], 1 - 5 / 2)


# --- on jobs the worker's code stored -------------------------------------------------------------


def test_classification_baseline_and_optimized_overlaid_with_the_job_metrics():
    job = explained_job("dna-classification", profile="int8")
    run = trained_run("dna-classification", "int8")
    result = ev.evaluate(job)
    assert result.shown == set(ev.CLASSIFICATION_FIGURES)
    by_variant = {}
    for row in result.summary:
        by_variant.setdefault(row["variant"], {}).update(row)
    assert set(by_variant) == {"Baseline", "Optimized (int8)"}
    assert math.isclose(by_variant["Baseline"]["accuracy"], run.metrics["test"]["accuracy"], abs_tol=1e-9)
    assert math.isclose(by_variant["Baseline"]["roc_auc"], run.metrics["test"]["roc_auc"], abs_tol=1e-4)
    optimized = run.compression.to_dict()["optimized"]["metrics"]
    assert math.isclose(by_variant["Optimized (int8)"]["accuracy"], optimized["accuracy"], abs_tol=1e-9)
    roc = result.figures[ev.ROC]
    names = [t.name for t in roc.data]
    assert any(n.startswith("Baseline (AUC") for n in names)
    assert any(n.startswith("Optimized (int8) (AUC") for n in names)
    assert roc.layout.xaxis.title.text == "False positive rate (0–1)"
    confusion = result.figures[ev.CONFUSION]
    assert len(confusion.data) == 2 and int(np.sum(confusion.data[0].text)) == run.metrics["n_test"]
    assert len(result.figures[ev.CALIBRATION].data) == 3  # two variants and the diagonal


def test_regression_parity_residuals_and_errors():
    job = explained_job("dna-regression")
    run = trained_run("dna-regression")
    result = ev.evaluate(job)
    assert result.shown == set(ev.REGRESSION_FIGURES)
    row = result.summary[0]
    assert math.isclose(row["rmse"], run.metrics["test"]["rmse"], rel_tol=1e-5)
    parity = result.figures[ev.PARITY]
    identity = [t for t in parity.data if t.name == "identity (perfect)"][0]
    assert list(identity.x) == list(identity.y)
    points = parity.data[0]
    residuals = result.figures[ev.RESIDUALS].data[0]
    assert np.allclose(residuals.y, np.asarray(points.y) - np.asarray(points.x))
    assert result.figures[ev.ERRORS].data[0].type == "histogram"


def test_per_token_accuracy_per_class():
    job = explained_job("residue-labeling")
    run = trained_run("residue-labeling")
    result = ev.evaluate(job)
    assert result.shown == {ev.TOKEN_ACCURACY}
    row = result.summary[0]
    assert math.isclose(row["token_accuracy"], run.metrics["test"]["token_accuracy"], abs_tol=1e-9)
    arrays = ev.variants(job)[0].arrays
    for j, cls in enumerate(ev.variants(job)[0].classes):
        mask = arrays["y_true"] == j
        if mask.any():
            assert math.isclose(row[f"class {cls}"], float((arrays["y_pred"][mask] == j).mean()))


def test_multiclass_summary_averages_every_class_and_draws_one_curve_per_class(tmp_path):
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED)
    targets = TargetEncoder(kind="multiclass", target_cols=["label"], classes=["a", "b", "c"])
    logits = [np.array(row, dtype=float) for row in
              [[2, 0, 0], [0, 2, 0], [0, 0, 2], [1, 0.5, 0], [0, 1, 1.5], [0.2, 0.1, 0], [0, 0, 0.1], [1, 2, 0]]]
    labels = [0, 1, 2, 1, 2, 0, 2, 0]
    np.savez_compressed(tmp_path / "evaluation.npz", **evaluation_arrays(targets, logits, labels))
    artifact_create(job_id=job.pk, kind=Artifact.Kind.PREDICTIONS, path=tmp_path / "evaluation.npz",
                    metadata={"kind": "multiclass", "variant": "baseline", "classes": ["a", "b", "c"], "n": 8})
    result = ev.evaluate(job)
    proba = np.exp(np.stack(logits)) / np.exp(np.stack(logits)).sum(axis=1, keepdims=True)
    y = np.array(labels)
    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(3)])
    assert math.isclose(result.summary[0]["roc_auc"], expected, rel_tol=1e-6)
    assert math.isclose(result.summary[0]["accuracy"], float((proba.argmax(axis=1) == y).mean()))
    assert [t.name.split(" (")[0] for t in result.figures[ev.ROC].data] == [
        "Baseline: class a vs rest", "Baseline: class b vs rest", "Baseline: class c vs rest", "chance"]
    assert "top class probability" in result.figures[ev.CALIBRATION].layout.xaxis.title.text


# --- through the Dash endpoints --------------------------------------------------------------------


def test_owner_gets_the_figures_through_the_endpoint(client):
    job = explained_job("dna-classification")
    client.force_login(job.owner)
    props = dash.response_props(dash.update(client, APP, outputs=OUTPUTS,
                                            inputs={"store.data": {"job_id": job.pk}, f"{ev.TARGET_ID}.value": 0}))
    assert not is_empty_figure(props[ev.ROC]["figure"]) and props[f"{ev.ROC}-box"]["style"]["display"] == "block"
    assert props[f"{ev.PARITY}-box"]["style"]["display"] == "none"


@pytest.mark.parametrize("who", ["other_lab", "anonymous"])
def test_private_job_is_unreachable_through_every_evaluation_endpoint(client, who):
    job = explained_job("dna-classification", visibility=Visibility.PRIVATE)
    client.force_login(job.owner)
    values = {f"{ev.TARGET_ID}.value": 0}
    owner = call_every_callback(client, APP, job.pk, values)
    nobody = call_every_callback(client, APP, 10**9, values)
    assert owner != nobody
    if who == "anonymous":
        client.logout()
        response = dash.update(client, APP, outputs=OUTPUTS, inputs={"store.data": {"job_id": job.pk}})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        return
    client.force_login(MembershipFactory().user)
    assert call_every_callback(client, APP, job.pk, values) == nobody
    props = dash.response_props(dash.update(client, APP, outputs=OUTPUTS,
                                            inputs={"store.data": {"job_id": job.pk}, f"{ev.TARGET_ID}.value": 0}))
    assert props[ev.STATUS_ID]["children"] == ev.NOT_FOUND and is_empty_figure(props[ev.ROC]["figure"])


def test_a_finished_job_without_stored_predictions_says_so():
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.FAILED)
    result = ev.evaluate(job)
    assert result.status == "No per-record predictions were stored for this job." and not result.shown
    assert all(is_empty_figure(f) for f in result.figures.values())


def test_the_two_confusion_matrices_do_not_overlap():
    """Baseline and optimized side by side on a full row, sharing the true-class axis: its title and
    class labels once, on the left, and a gap between the two matrices."""
    job = explained_job("dna-classification", profile="int8")
    fig = ev.evaluate(job).figures[ev.CONFUSION]
    layout = fig.layout
    assert len(fig.data) == 2
    left, right = layout.xaxis.domain, layout.xaxis2.domain
    assert left[1] < right[0]
    assert layout.yaxis.title.text == "True class" and layout.yaxis.showticklabels is not False
    assert layout.yaxis2.title.text is None and layout.yaxis2.showticklabels is False
    assert layout.yaxis2.matches == "y"  # shared: the same class order in both
    assert [t.showscale for t in fig.data] == [True, False]  # one colour bar, for both (zmin 0, zmax 1)
    assert all(t.zmin == 0 and t.zmax == 1 for t in fig.data)
    assert ev.box_style(ev.CONFUSION, True) == {"display": "block", "gridColumn": "1 / -1"}
    assert ev.box_style(ev.ROC, True) == {"display": "block"}
