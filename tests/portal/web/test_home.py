"""Home page, navbar and lab switcher, sign in."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.accounts.models import Visibility
from portal.jobs.models import Job
from portal.results.models import Result
from portal.web.labs import SESSION_KEY
from tests.portal.factories import DatasetFactory, JobFactory, LabFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_home_redirects_to_sign_in() -> None:
    response = Client().get(reverse("web:home"))
    assert response.status_code == 302 and response.url == reverse("login") + "?next=/"


def test_sign_in_page_and_a_wrong_password_keeps_the_username() -> None:
    client = Client()
    page = client.get(reverse("login"))
    html = page.content.decode()
    assert page.status_code == 200 and 'id="login-form"' in html and "<title>Sign in · Labformer</title>" in html
    user = UserFactory(username="ada")
    wrong = client.post(reverse("login"), {"username": "ada", "password": "nope"})
    html = wrong.content.decode()
    assert wrong.status_code == 200 and 'id="login-error"' in html and 'value="ada"' in html
    right = client.post(reverse("login"), {"username": "ada", "password": "pw-for-tests"})
    assert right.status_code == 302 and right.url == reverse("web:home")
    assert client.get(reverse("web:home")).context["user"] == user


def test_empty_home_says_what_to_do_next(member_client) -> None:
    html = member_client.get(reverse("web:home")).content.decode()
    assert "<title>Home · Labformer</title>" in html
    assert 'id="empty-running"' in html and 'id="empty-results"' in html and 'id="empty-datasets"' in html
    assert reverse("web:dataset_upload") in html
    assert reverse("web:job_launch") in html


def test_home_shows_running_jobs_with_progress_and_recent_results(member_client, member, lab, outsider,
                                                                  other_lab) -> None:
    running = JobFactory(owner=member, lab=lab, status=Job.Status.RUNNING, progress=0.42, name="long-run")
    queued = JobFactory(owner=member, lab=lab, status=Job.Status.QUEUED)
    colleague = MembershipFactory(lab=lab).user
    done = JobFactory(owner=colleague, lab=lab, status=Job.Status.SUCCEEDED, progress=1.0,
                      finished_at=timezone.now(), name="colleague-result")
    Result.objects.create(job=done, baseline_metrics={"accuracy": 0.5, "roc_auc": 0.8765})
    foreign = JobFactory(owner=outsider, lab=other_lab, status=Job.Status.SUCCEEDED, visibility=Visibility.PUBLIC,
                         finished_at=timezone.now(), name="other-lab-result")

    html = member_client.get(reverse("web:home")).content.decode()
    running_section = html.split('id="running-jobs"')[1].split("</section>")[0]
    assert "long-run" in running_section and f"#{queued.pk}" in running_section
    assert 'aria-valuenow="42"' in running_section and "width: 42%" in running_section
    assert reverse("web:job_detail", args=[running.pk]) in running_section
    results = html.split('id="recent-results"')[1].split("</section>")[0]
    assert "colleague-result" in results and "roc_auc" in results and "0.8765" in results
    assert "other-lab-result" not in results  # public, but not this lab's and not mine
    assert foreign.pk

    feed = member_client.get(reverse("web:home_jobs")).json()["jobs"]
    assert {j["id"]: j["progress"] for j in feed} == {running.pk: 42, queued.pk: 0}


def test_navbar_has_every_section_and_admin_only_for_staff(member_client, member) -> None:
    html = member_client.get(reverse("web:home")).content.decode()
    for element in ("nav-home", "nav-datasets", "nav-upload", "nav-launch", "nav-catalog", "nav-tokens",
                    "lab-switcher", "nav-signout"):
        assert f'id="{element}"' in html, element
    assert 'id="nav-admin"' not in html
    member.is_staff = True
    member.save(update_fields=["is_staff"])
    assert 'id="nav-admin"' in member_client.get(reverse("web:home")).content.decode()


def test_lab_switcher_keeps_the_choice_in_the_session(member_client, member, lab) -> None:
    second = LabFactory(name="Zeta lab", slug="zeta")
    MembershipFactory(user=member, lab=second)
    home = member_client.get(reverse("web:home"))
    assert home.context["current_lab"] == lab  # the first by name until one is chosen
    response = member_client.post(reverse("web:lab_switch"), {"lab": "zeta", "next": reverse("web:dataset_list")})
    assert response.status_code == 302 and response.url == reverse("web:dataset_list")
    assert member_client.session[SESSION_KEY] == second.pk
    html = member_client.get(reverse("web:home")).content.decode()
    assert '<strong id="current-lab">Zeta lab</strong>' in html
    upload = member_client.get(reverse("web:dataset_upload")).content.decode()
    assert '<option value="zeta" selected>' in upload


def test_lab_switcher_refuses_a_lab_the_user_is_not_in(member_client, member, lab, other_lab) -> None:
    response = member_client.post(reverse("web:lab_switch"), {"lab": other_lab.slug})
    assert response.status_code == 404
    assert SESSION_KEY not in member_client.session
    assert member_client.get(reverse("web:home")).context["current_lab"] == lab


def test_lab_switcher_never_redirects_off_site(member_client, lab) -> None:
    response = member_client.post(reverse("web:lab_switch"), {"lab": lab.slug, "next": "https://evil.example/"})
    assert response.status_code == 302 and response.url == reverse("web:home")
    assert member_client.get(reverse("web:lab_switch")).status_code == 405


def test_a_user_removed_from_the_chosen_lab_falls_back(member_client, member, lab) -> None:
    second = LabFactory(name="Zeta lab", slug="zeta")
    membership = MembershipFactory(user=member, lab=second)
    member_client.post(reverse("web:lab_switch"), {"lab": "zeta"})
    membership.delete()
    assert member_client.get(reverse("web:home")).context["current_lab"] == lab


def test_home_lists_my_latest_datasets(member_client, member, lab) -> None:
    d = DatasetFactory(owner=member, lab=lab, name="my-latest")
    html = member_client.get(reverse("web:home")).content.decode()
    section = html.split('id="my-datasets"')[1].split("</section>")[0]
    assert "my-latest" in section and reverse("web:dataset_detail", args=[d.pk]) in section
