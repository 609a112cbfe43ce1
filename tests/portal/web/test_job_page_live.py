"""The job page while a job runs (its phase and streamed log) and after it failed (a summarized error,
no panels that cannot have data); the error pages. Real database and services; the worker's writes
go through the same services it calls."""

from __future__ import annotations

import re

import pytest
from django.template import loader
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.services import Point
from portal.web.views_jobs import error_summary
from tests.portal.factories import JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(member, lab) -> Job:
    return JobFactory(owner=member, lab=lab, profile_key="int8")


def _running(job: Job) -> Job:
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, attempts=1, started_at=timezone.now(),
                                         progress=0.5, worker_hostname="w1")
    job.refresh_from_db()
    return job


def test_a_running_job_shows_its_phase_and_the_log_streamed_so_far(member_client, job) -> None:
    _running(job)
    job_services.job_phase_set(job_id=job.pk, phase="optimizing", index=5, count=5)
    job_services.job_log_append(job_id=job.pk, attempt=1, text="line one\n")
    job_services.job_log_append(job_id=job.pk, attempt=1, text="epoch 1/3 train_loss=0.5\n")
    html = member_client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert re.search(r'id="job-phase">Optimizing \(step 5 of 5\)<', html)
    log = re.search(r'<pre[^>]*id="job-log"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert log == "line one\nepoch 1/3 train_loss=0.5"
    assert "updated while it runs" in html and "stores the log when an attempt ends" not in html

    status = member_client.get(reverse("web:job_status", args=[job.pk])).json()
    assert (status["phase"], status["phase_index"], status["phase_count"]) == ("optimizing", 5, 5)
    assert status["phase_text"] == "Optimizing (step 5 of 5)" and status["percent"] == 50
    assert status["log_attempt"] == 1 and status["log_chars"] == len("line one\nepoch 1/3 train_loss=0.5\n")
    text = member_client.get(reverse("web:job_log", args=[job.pk]))
    assert text["Content-Type"].startswith("text/plain") and text.content.decode().endswith("train_loss=0.5")


def test_each_attempts_log_is_kept_and_can_be_read(member_client, job) -> None:
    _running(job)
    job_services.job_log_append(job_id=job.pk, attempt=1, text="first attempt\nworker lost\n")
    Job.objects.filter(pk=job.pk).update(attempts=2)
    job_services.job_log_append(job_id=job.pk, attempt=2, text="second attempt resumes\n")
    html = member_client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert "second attempt resumes" in html and "worker lost" not in html
    assert re.search(r'id="job-log-attempts".*data-attempt="1".*data-attempt="2"', html, re.S)
    first = member_client.get(reverse("web:job_log", args=[job.pk]) + "?attempt=1")
    assert first.content.decode() == "first attempt\nworker lost" and first["X-Log-Attempt"] == "1"
    assert member_client.get(reverse("web:job_log", args=[job.pk]) + "?attempt=x").status_code == 404


def test_the_log_kept_in_the_database_is_its_tail(job) -> None:
    from portal.jobs.models import JobLog
    from portal.jobs.selectors import job_log_tail

    _running(job)
    line = "x" * 99 + "\n"
    for _ in range(3):
        job_services.job_log_append(job_id=job.pk, attempt=1, text=line * 5000)  # 500 kB a time
    row = JobLog.objects.get(job=job, attempt=1)
    assert len(row.text) == JobLog.MAX_CHARS and row.chars_total == 1_500_000
    tail = job_log_tail(job=job, max_chars=1000)
    assert tail.text == line * 9 + "" and tail.text.startswith("x")  # cut at a line start


def test_the_api_gives_the_phase_and_the_log(job, member) -> None:
    from portal.accounts.services import api_token_create

    _running(job)
    job_services.job_phase_set(job_id=job.pk, phase="training", index=2, count=5)
    job_services.job_log_append(job_id=job.pk, attempt=1, text="hello\n")
    _, secret = api_token_create(user=member, name="t")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    data = client.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (data["phase"], data["phase_index"], data["phase_count"]) == ("training", 2, 5)
    listed = client.get("/api/v1/jobs/").json()["results"][0]
    assert listed["phase"] == "training"
    log = client.get(f"/api/v1/jobs/{job.pk}/log/").json()
    assert log == {"attempt": 1, "attempts": [1], "chars_total": 6, "text": "hello\n"}
    assert client.get(f"/api/v1/jobs/{job.pk}/log/?tail=x").status_code == 400


# --- a failed job ----------------------------------------------------------------------------------

CLASSES = ", ".join(f"{0.1 * i:.3f}" for i in range(1000))


def test_error_summary_cuts_long_lists_to_their_first_items_and_a_count() -> None:
    message = f"DataError: data.csv: a classification target needs few classes; found 1000: [{CLASSES}]"
    summary = error_summary(message)
    assert summary == ("DataError: data.csv: a classification target needs few classes; found 1000: "
                       "[0.000, 0.100, 0.200, 0.300, 0.400, … (995 more, 1000 in all)]")
    bare = error_summary(f"classes: {CLASSES}")
    assert bare.startswith("classes: 0.000, 0.100, 0.200, 0.300, 0.400, … (995 more, 1000 in all)")
    assert error_summary("KeyError: 'label'") == "KeyError: 'label'"
    assert error_summary("x" * 1000).endswith(" …") and len(error_summary("x" * 1000)) < 450


def test_a_failed_job_shows_a_summary_and_no_empty_panels(member_client, job) -> None:
    message = f"ValueError: the target has 1000 classes: [{CLASSES}]"
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, attempts=1, error_message=message,
                                         error_traceback="Traceback (most recent call last): ...",
                                         finished_at=timezone.now())
    html = member_client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    summary = re.search(r'id="job-error-summary">(.*?)</p>', html, re.S).group(1)
    assert "(995 more, 1000 in all)" in summary and "99.900" not in summary
    assert re.search(r'<details id="job-error-full">.*99\.900', html, re.S)  # the whole text behind a toggle
    for panel in ('id="job-curves"', 'id="job-explain"', 'id="job-results"', "data-dashboard="):
        assert panel not in html, panel
    assert "before it was evaluated" in html


def test_a_failed_job_with_curves_keeps_them(member_client, job) -> None:
    result_services.metric_points_record(job_id=job.pk, points=[Point("train", "loss", 1, 1, 0.7, 1)])
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error_message="boom", finished_at=timezone.now())
    html = member_client.get(reverse("web:job_detail", args=[job.pk])).content.decode()
    assert 'id="job-curves"' in html and 'id="job-explain"' not in html and 'id="job-error-full"' not in html


# --- error pages -------------------------------------------------------------------------------------

def test_the_404_page_is_the_portals(member_client) -> None:
    response = member_client.get("/jobs/999999/")
    html = response.content.decode()
    assert response.status_code == 404 and 'id="navbar"' in html and "bootstrap.min.css" in html
    assert 'id="error-page" data-status="404"' in html and 'id="nav-user"' in html


def test_the_500_page_renders_without_a_request_or_the_database(django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        html = loader.get_template("500.html").render()  # as django.views.defaults.server_error does
    assert 'id="error-page" data-status="500"' in html and "bootstrap.min.css" in html
    assert "Server error · Labformer" in html and 'id="nav-signin"' in html
