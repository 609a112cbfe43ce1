"""The catalog (filters, sorting by metrics, pages) and the compare page, against the real database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from portal.accounts.models import Visibility
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


def _listed(response) -> list[int]:  # noqa: ANN001
    """Job ids in the catalog table, in the order shown."""
    return [int(pk) for pk in re.findall(r'<tr data-job="(\d+)"', _html(response))]


def _done(job: Job, *, baseline: dict, optimized: dict | None = None, days_ago: int = 0) -> Job:
    """A finished job with results (tests stand in for the worker)."""
    created = timezone.now() - timedelta(days=days_ago)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0, finished_at=created,
                                         created_at=created)
    result_services.result_record(job_id=job.pk, baseline_metrics=baseline, optimized_metrics=optimized or {})
    job.refresh_from_db()
    return job


@pytest.fixture
def world(member, lab, outsider, other_lab):
    """Jobs in two labs: the member sees their lab's and public ones, never the other lab's private ones."""
    colleague = MembershipFactory(lab=lab).user
    dna = DatasetFactory(owner=member, lab=lab, name="promoters", modality="dna")
    mols = DatasetFactory(owner=colleague, lab=lab, name="tox", modality="smiles")
    jobs = {
        "dna_good": _done(JobFactory(owner=member, lab=lab, dataset=dna, profile_key="int8"),
                          baseline={"roc_auc": 0.95, "accuracy": 0.9}, optimized={"roc_auc": 0.94}, days_ago=10),
        "dna_poor": _done(JobFactory(owner=member, lab=lab, dataset=dna, profile_key="baseline"),
                          baseline={"roc_auc": 0.70, "accuracy": 0.6}, days_ago=5),
        "mol_reg": _done(JobFactory(owner=colleague, lab=lab, dataset=mols, task_key="molecule-regression",
                                    profile_key="pruned"), baseline={"rmse": 0.4, "mae": 0.3}, days_ago=1),
        "running": JobFactory(owner=colleague, lab=lab, dataset=mols, task_key="molecule-classification"),
        "public_other": JobFactory(owner=outsider, lab=other_lab, visibility=Visibility.PUBLIC),
        "private_other": JobFactory(owner=outsider, lab=other_lab, visibility=Visibility.PRIVATE),
    }
    Job.objects.filter(pk=jobs["running"].pk).update(status=Job.Status.RUNNING, progress=0.5)
    return jobs


def test_the_catalog_lists_every_job_the_user_may_see(member_client, world):
    response = member_client.get(reverse("web:catalog"))
    html = _html(response)
    assert response.status_code == 200
    assert 'id="catalog-table"' in html and 'id="compare-button"' in html
    shown = set(_listed(response))
    assert shown == {world[k].pk for k in ("dna_good", "dna_poor", "mol_reg", "running", "public_other")}
    assert "0.9500" in html and "0.9400" in html  # the primary metric, baseline and optimized
    assert 'id="select-{}"'.format(world["dna_good"].pk) in html


def test_anonymous_users_are_sent_to_sign_in(world):
    for url in (reverse("web:catalog"), reverse("web:compare") + f"?jobs={world['dna_good'].pk}"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_an_empty_catalog_says_what_to_do(member_client):
    html = _html(member_client.get(reverse("web:catalog")))
    assert 'id="catalog-empty"' in html and reverse("web:job_launch") in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("domain=chemistry", {"mol_reg", "running"}),
        ("task=dna-classification", {"dna_good", "dna_poor", "public_other"}),
        ("profile=int8", {"dna_good"}),
        ("status=running", {"running"}),
        ("domain=bioinformatics&profile=baseline&status=succeeded", {"dna_poor"}),
    ],
)
def test_filters_narrow_the_list(member_client, world, query, expected):
    response = member_client.get(reverse("web:catalog") + "?" + query)
    assert set(_listed(response)) == {world[k].pk for k in expected}


def test_filter_by_owner_dataset_and_date(member_client, member, world):
    url = reverse("web:catalog")
    assert set(_listed(member_client.get(url, {"owner": member.username}))) == {world["dna_good"].pk, world["dna_poor"].pk}
    dataset = world["mol_reg"].dataset_id
    assert set(_listed(member_client.get(url, {"dataset": dataset}))) == {world["mol_reg"].pk, world["running"].pk}
    today = timezone.localdate()
    window = {"date_from": (today - timedelta(days=7)).isoformat(), "date_to": (today - timedelta(days=2)).isoformat()}
    assert _listed(member_client.get(url, window)) == [world["dna_poor"].pk]


def test_a_bad_filter_is_reported_next_to_it(member_client, world):
    response = member_client.get(reverse("web:catalog"), {"date_from": "2026-02-30", "status": "exploded"})
    html = _html(response)
    assert re.search(r'id="error-date_from">[^<]*valid date', html)
    assert re.search(r'id="error-status">[^<]*valid choice', html)
    assert len(_listed(response)) == 5  # the bad filters are not applied


def test_the_filter_form_keeps_its_values_so_the_address_is_a_permalink(member_client, world):
    html = _html(member_client.get(reverse("web:catalog"), {"domain": "chemistry", "sort": "primary", "order": "asc"}))
    assert re.search(r'<option value="chemistry" selected>', html)
    assert re.search(r'<option value="primary" selected>', html)


def test_sort_by_a_metric_puts_missing_values_last(member_client, world):
    url = reverse("web:catalog")
    desc = _listed(member_client.get(url, {"sort": "baseline.roc_auc", "order": "desc"}))
    assert desc[:2] == [world["dna_good"].pk, world["dna_poor"].pk]
    asc = _listed(member_client.get(url, {"sort": "baseline.roc_auc", "order": "asc"}))
    assert asc[:2] == [world["dna_poor"].pk, world["dna_good"].pk]
    assert len(asc) == len(desc) == 5
    assert _listed(member_client.get(url, {"sort": "baseline.rmse"}))[0] == world["mol_reg"].pk
    assert _listed(member_client.get(url, {"sort": "optimized.roc_auc"}))[0] == world["dna_good"].pk


def test_sort_by_primary_metric_ranks_across_tasks_best_first(member_client, world, member, lab):
    """RMSE is better when lower: a 0.4 RMSE ranks as -0.4, below any ROC-AUC, above a 0.9 RMSE."""
    worse = _done(JobFactory(owner=member, lab=lab, dataset=world["mol_reg"].dataset, task_key="molecule-regression"),
                  baseline={"rmse": 0.9})
    shown = _listed(member_client.get(reverse("web:catalog"), {"sort": "primary", "order": "desc"}))
    assert shown[:4] == [world["dna_good"].pk, world["dna_poor"].pk, world["mol_reg"].pk, worse.pk]


def test_sort_by_date_and_status(member_client, world):
    url = reverse("web:catalog")
    oldest_first = _listed(member_client.get(url, {"sort": "created", "order": "asc"}))
    assert oldest_first[:3] == [world["dna_good"].pk, world["dna_poor"].pk, world["mol_reg"].pk]
    by_status = _listed(member_client.get(url, {"sort": "status", "order": "asc"}))
    statuses = list(Job.objects.filter(pk__in=by_status).values_list("pk", "status"))
    order = [dict(statuses)[pk] for pk in by_status]
    assert order == sorted(order)


def test_pages_keep_the_filters(member_client, member, lab):
    dataset = DatasetFactory(owner=member, lab=lab)
    for _ in range(30):
        JobFactory(owner=member, lab=lab, dataset=dataset, profile_key="slim")
    JobFactory(owner=member, lab=lab, dataset=dataset, profile_key="int8")
    first = member_client.get(reverse("web:catalog"), {"profile": "slim"})
    assert len(_listed(first)) == 25
    html = _html(first)
    assert "?profile=slim&amp;page=2" in html
    second = member_client.get(reverse("web:catalog"), {"profile": "slim", "page": 2})
    assert len(_listed(second)) == 5
    assert not set(_listed(first)) & set(_listed(second))


# --- compare --------------------------------------------------------------------------------------

@pytest.fixture
def two_runs(member, lab):
    dataset = DatasetFactory(owner=member, lab=lab, name="promoters", modality="dna")
    a = job_services.job_submit(user=member, dataset=dataset, task_key="dna-classification",
                                hyperparameters={"lr": 0.001, "epochs": 5})
    b = job_services.job_submit(user=member, dataset=dataset, task_key="dna-classification", profile_key="int8",
                                hyperparameters={"lr": 0.01, "epochs": 5})
    _done(a, baseline={"roc_auc": 0.81, "accuracy": 0.7})
    _done(b, baseline={"roc_auc": 0.88, "accuracy": 0.75}, optimized={"roc_auc": 0.87})
    return a, b


def _diff_rows(html: str) -> dict[str, bool]:
    return {key: differs == "true" for key, differs in
            re.findall(r'data-key="([^"]+)" data-differs="(true|false)"', html)}


def test_compare_shows_the_config_diff_and_metrics(member_client, two_runs):
    a, b = two_runs
    response = member_client.get(reverse("web:compare"), {"jobs": f"{a.pk},{b.pk}"})
    html = _html(response)
    assert response.status_code == 200
    rows = _diff_rows(html)
    assert rows["hyperparameters.lr"] is True and rows["profile"] is True
    assert not any(key.startswith("overrides.") for key in rows)  # the resolved values say it once
    assert rows["hyperparameters.epochs"] is False and rows["dataset.name"] is False and rows["task"] is False
    assert re.search(r'<tr class="table-warning diff-row" data-key="hyperparameters.lr"', html)
    metrics = re.search(r'id="compare-metrics-table".*?</table>', html, re.S).group(0)
    assert "0.8100" in metrics and "0.8800" in metrics and "0.8700" in metrics
    assert 'id="diff-only"' in html and "js/catalog.js" in html


def test_compare_accepts_repeated_parameters_from_the_form(member_client, two_runs):
    a, b = two_runs
    response = member_client.get(reverse("web:compare") + f"?jobs={a.pk}&jobs={b.pk}")
    assert response.status_code == 200
    assert _diff_rows(_html(response))["profile"] is True


def test_compare_404s_on_a_job_you_may_not_see_or_a_bad_id(member_client, two_runs, outsider, other_lab):
    a, _ = two_runs
    hidden = JobFactory(owner=outsider, lab=other_lab, visibility=Visibility.PRIVATE)
    assert member_client.get(reverse("web:compare"), {"jobs": f"{a.pk},{hidden.pk}"}).status_code == 404
    assert member_client.get(reverse("web:compare"), {"jobs": f"{a.pk},x"}).status_code == 404


def test_compare_with_fewer_than_two_jobs_says_what_to_do(member_client, two_runs):
    a, _ = two_runs
    html = _html(member_client.get(reverse("web:compare"), {"jobs": str(a.pk)}))
    assert 'id="compare-empty"' in html and reverse("web:catalog") in html


def test_the_catalog_page_costs_the_same_queries_for_few_or_many_jobs(member_client, member, lab):
    """No query per row: results, owners and datasets come with the jobs."""
    dataset = DatasetFactory(owner=member, lab=lab)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert member_client.get(reverse("web:catalog")).status_code == 200
        return len(queries)

    for _ in range(3):
        _done(JobFactory(owner=member, lab=lab, dataset=dataset), baseline={"roc_auc": 0.8})
    count()  # the first request also touches the session and caches: measure from the second
    few = count()
    for _ in range(20):
        _done(JobFactory(owner=member, lab=lab, dataset=dataset), baseline={"roc_auc": 0.8})
    count()  # new jobs renew the cached filter choices once (tests/portal/web/test_catalog_performance.py)
    assert count() == few
