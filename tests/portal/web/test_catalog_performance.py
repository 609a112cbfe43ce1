"""The catalog page's cost is bounded: a fixed number of queries whatever the number of jobs,
datasets and owners (bench/api.py measures its latency), its cached filter choices follow new jobs,
and the fast drop-down renders what Django's would."""

from __future__ import annotations

import re

import pytest
from django import forms
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.jobs.models import Job
from portal.web.forms_jobs import FastSelect
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

# session, user, the user's labs (menu), newest job id (facets' cache key), count, page rows.
# The filter choices come from the cache after the first page; the panel plots the page's jobs.
CATALOG_QUERIES = 6


def _queries(client, url: str) -> int:  # noqa: ANN001
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/catalog/", "/catalog/?status=succeeded&sort=primary&page=2",
                                 "/catalog/?sort=dataset&order=asc", "/catalog/?sort=baseline.roc_auc"])
def test_catalog_query_count_is_bounded_whatever_the_number_of_jobs(member_client, member, lab, url: str) -> None:
    colleagues = [MembershipFactory(lab=lab).user for _ in range(3)]
    for i in range(60):  # 60 jobs over 12 datasets and 4 owners: more than two pages
        owner = ([member] + colleagues)[i % 4]
        JobFactory(owner=owner, lab=lab, dataset=DatasetFactory(owner=owner, lab=lab) if i < 12 else
                   Job.objects.order_by("?").first().dataset, status=Job.Status.SUCCEEDED, progress=1.0)
    member_client.get(url)  # the first page fills the filter choices' cache
    assert _queries(member_client, url) <= CATALOG_QUERIES
    for i in range(40):
        JobFactory(owner=member, lab=lab, dataset=DatasetFactory(owner=member, lab=lab), status=Job.Status.SUCCEEDED)
    member_client.get(url)
    assert _queries(member_client, url) <= CATALOG_QUERIES


def test_catalog_filter_choices_follow_a_new_job(member_client, member, lab) -> None:
    JobFactory(owner=member, lab=lab, dataset=DatasetFactory(owner=member, lab=lab, name="first-set"))
    assert "first-set v1" in member_client.get(reverse("web:catalog")).content.decode()
    newcomer = MembershipFactory(lab=lab).user
    JobFactory(owner=newcomer, lab=lab, dataset=DatasetFactory(owner=newcomer, lab=lab, name="second-set"))
    html = member_client.get(reverse("web:catalog")).content.decode()
    assert "second-set v1" in html and f'<option value="{newcomer.username}">' in html


def test_fast_select_renders_like_djangos_select() -> None:
    choices = [("", "any"), (1, "a <b> & \"c\""), (2, "two"), ("x'y", "quote")]
    attrs = {"id": "id_dataset", "class": "form-select form-select-sm"}
    for value in ["", "1", 2, "x'y", None]:
        ours = FastSelect(choices=choices).render("dataset", value, attrs=attrs)
        django = forms.Select(choices=choices).render("dataset", value, attrs=attrs)
        assert re.sub(r"\s+", "", ours) == re.sub(r"\s+", "", django), (value, ours, django)


def test_catalog_trade_offs_panel_frame_serves_the_dashboard(member_client, member, lab) -> None:
    """The panel's iframe (built without a Dash instance, see dashboards.dashboard_frame) points at
    the tradeoffs app with this page's arguments."""
    job = JobFactory(owner=member, lab=lab, dataset=DatasetFactory(owner=member, lab=lab))
    html = member_client.get(reverse("web:catalog")).content.decode()
    src = re.search(r'data-dashboard="tradeoffs".*?<iframe src="([^"]+)"', html, re.S).group(1)
    assert src.startswith("/django_plotly_dash/app/tradeoffs/initial/dpd-initial-args-"), src
    page = member_client.get(src)
    assert page.status_code == 200 and b"_dash-config" in page.content
    layout = member_client.get(src + "_dash-layout")
    assert layout.status_code == 200 and str(job.pk).encode() in layout.content
