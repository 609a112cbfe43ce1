"""A job's primary metric comes from one selector (portal.results.selectors.primary_metric): the result
stores the target kind the run resolved and that kind's primary metric, and home, the catalog, the job
page, the compare page, the API and the dashboards all show and rank by it. A "binary" task whose data
has 3 classes runs as multiclass, so it is judged by macro-F1, not ROC-AUC."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from mlcore import catalog
from portal.dashboards import common
from portal.jobs.models import Job
from portal.results.models import Result
from portal.results.selectors import primary_metric
from portal.results.services import result_record
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

BINARY_TASK = "dna-classification"
MULTICLASS = catalog.TARGET_KINDS["multiclass"]
BINARY = catalog.TARGET_KINDS["binary"]
# What a 3-class run reports: both ROC-AUC (its one-vs-rest mean) and macro-F1, far apart on purpose.
THREE_CLASS_METRICS = {"roc_auc": 0.55, "macro_f1": 0.91, "accuracy": 0.9}


def _finished(membership, *, name: str, **dataset_kw) -> Job:  # noqa: ANN001
    dataset = DatasetFactory(owner=membership.user, lab=membership.lab, modality="dna", **dataset_kw)
    return JobFactory(owner=membership.user, lab=membership.lab, dataset=dataset, task_key=BINARY_TASK, name=name,
                      status=Job.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now(),
                      config={"task": BINARY_TASK, "target_kind": catalog.TASKS[BINARY_TASK].target_kind})


def test_a_three_class_job_on_a_binary_task_is_judged_by_macro_f1_everywhere() -> None:
    assert catalog.TASKS[BINARY_TASK].target_kind == BINARY.key and MULTICLASS.primary_metric != BINARY.primary_metric
    m = MembershipFactory()
    three = _finished(m, name="three-classes")
    # What the worker records: the kind the recipe resolved from the data (metrics.json's target_kind).
    result_record(job_id=three.pk, baseline_metrics=THREE_CLASS_METRICS,
                  optimized_metrics={"roc_auc": 0.5, "macro_f1": 0.88}, target_kind=MULTICLASS.key)
    stored = Result.objects.get(job=three)
    assert (stored.target_kind, stored.primary_metric, stored.greater_is_better, stored.primary_value) == (
        MULTICLASS.key, MULTICLASS.primary_metric, MULTICLASS.greater_is_better, 0.91)
    three.refresh_from_db()
    metric = primary_metric(three)
    assert (metric.key, metric.value, metric.optimized, metric.target_kind) == ("macro_f1", 0.91, 0.88, MULTICLASS.key)
    assert common.primary_metric_for_job(three) == "macro_f1"  # the dashboards' call

    page = Client()
    page.force_login(m.user)
    home = page.get(reverse("web:home")).content.decode().split('id="recent-results"')[1].split("</section>")[0]
    assert "three-classes" in home and "macro_f1" in home and "0.9100" in home and "roc_auc" not in home
    listing = page.get(reverse("web:catalog")).content.decode()
    row = listing.split('id="catalog-table"')[1]
    assert "macro_f1</span> 0.9100" in row and "roc_auc" not in row
    detail = page.get(reverse("web:job_detail", args=[three.pk])).content.decode()
    assert re.search(r'<tr class="table-primary" data-metric="macro_f1">', detail)
    assert not re.search(r'class="table-primary" data-metric="roc_auc"', detail)
    two = _finished(m, name="two-classes")
    result_record(job_id=two.pk, baseline_metrics={"roc_auc": 0.8, "macro_f1": 0.5}, target_kind=BINARY.key)
    compare = page.get(reverse("web:compare"), {"jobs": f"{three.pk},{two.pk}"}).content.decode()
    rows = re.findall(r'<tr data-metric="([a-z_0-9]+)">', compare.split('id="compare-metrics-table"')[1])
    assert rows[0] == "macro_f1"  # the first job's primary metric leads

    api = token_client(m.user).get(f"/api/v1/jobs/{three.pk}/metrics/").json()
    assert api["primary"] == {"key": "macro_f1", "value": 0.91, "optimized": 0.88, "greater_is_better": True,
                              "target_kind": MULTICLASS.key}


def test_the_catalog_ranks_each_job_by_its_resolved_primary_metric() -> None:
    """Sorting by primary metric: the 3-class job's macro-F1 (0.91) beats the 2-class job's ROC-AUC (0.8);
    ranked by ROC-AUC as the task declares, its 0.55 would come last."""
    m = MembershipFactory()
    three = _finished(m, name="three-classes")
    result_record(job_id=three.pk, baseline_metrics=THREE_CLASS_METRICS, target_kind=MULTICLASS.key)
    two = _finished(m, name="two-classes")
    result_record(job_id=two.pk, baseline_metrics={"roc_auc": 0.8, "macro_f1": 0.5}, target_kind=BINARY.key)
    page = Client()
    page.force_login(m.user)
    html = page.get(reverse("web:catalog"), {"sort": "primary", "order": "desc"}).content.decode()
    assert html.index("three-classes") < html.index("two-classes")
    html = page.get(reverse("web:catalog"), {"sort": "primary", "order": "asc"}).content.decode()
    assert html.index("two-classes") < html.index("three-classes")


def test_without_the_run_saying_the_kind_is_told_from_the_data_and_stored() -> None:
    """A result recorded without the resolved kind (or a job still running) gets it from the number of
    classes the dataset's validation found, as the dashboards told it before."""
    m = MembershipFactory()
    report = {"stats": {"target": {"kind": "classification", "n_classes": 3}}}
    running = _finished(m, name="running", validation_report=report)
    Job.objects.filter(pk=running.pk).update(status=Job.Status.RUNNING, finished_at=None)
    running.refresh_from_db()
    metric = primary_metric(running)
    assert (metric.key, metric.value, metric.target_kind) == ("macro_f1", None, MULTICLASS.key)
    result_record(job_id=running.pk, baseline_metrics=THREE_CLASS_METRICS)
    stored = Result.objects.get(job=running)
    assert (stored.target_kind, stored.primary_metric, stored.primary_value) == (MULTICLASS.key, "macro_f1", 0.91)
    two = _finished(m, name="two")
    result_record(job_id=two.pk, baseline_metrics={"roc_auc": 0.7, "rmse": 1.0})
    assert Result.objects.get(job=two).primary_metric == "roc_auc"
    regression = JobFactory(owner=m.user, lab=m.lab, task_key="dna-regression")
    result_record(job_id=regression.pk, baseline_metrics={"rmse": 0.25, "r2": 0.5})
    stored = Result.objects.get(job=regression)
    assert (stored.primary_metric, stored.greater_is_better, stored.primary_value) == ("rmse", False, 0.25)


def test_the_migration_fills_results_recorded_before_the_columns() -> None:
    """Results stored before the kind and primary metric were columns get them as the dashboards told
    them: from the compression report's metric, else the dataset's number of classes."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("portal.results.migrations.0004_result_target_kind_and_primary_metric")
    m = MembershipFactory()
    report = {"stats": {"target": {"kind": "classification", "n_classes": 3}}}
    three = _finished(m, name="three", validation_report=report)
    Result.objects.create(job=three, baseline_metrics=THREE_CLASS_METRICS)
    two = _finished(m, name="two")
    Result.objects.create(job=two, baseline_metrics={"roc_auc": 0.7},
                          compression_report={"primary_metric": "roc_auc", "greater_is_better": True})
    regression = JobFactory(owner=m.user, lab=m.lab, task_key="dna-regression")
    Result.objects.create(job=regression, baseline_metrics={"r2": 0.5})  # no rmse measured
    migration.fill_primary_metric(apps, None)
    filled = {r.job_id: (r.target_kind, r.primary_metric, r.greater_is_better, r.primary_value)
              for r in Result.objects.all()}
    assert filled == {three.pk: (MULTICLASS.key, "macro_f1", True, 0.91), two.pk: (BINARY.key, "roc_auc", True, 0.7),
                      regression.pk: (catalog.TASKS["dna-regression"].target_kind, "rmse", False, None)}
