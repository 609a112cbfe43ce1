"""The job page in a browser: a running job's phase and log follow the worker's writes, nothing
says "queued" once it runs, Cancel asks first, a failed job's error is a summary with the rest behind
a toggle and no empty panels, and the 404 page is the portal's. The worker's writes are made through
the services it calls (no Celery worker needed: the page reads what they write)."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from portal.jobs import services as job_services
from portal.jobs.models import Job
from tests.portal.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)
# The page polls status.json every 2 s, backing off when the busy server is slow.
POLL_MS = 30_000


def test_a_running_jobs_page_follows_its_phase_and_log_and_stops_saying_queued(
        page: Page, member, sign_in, broker) -> None:  # noqa: ANN001
    finished = JobFactory(owner=member.user, lab=member.lab, profile_key="int8", status=Job.Status.SUCCEEDED,
                          progress=1.0, finished_at=timezone.now())
    sign_in(page, member.user)
    page.goto(f"/jobs/{finished.pk}/")
    page.locator("#job-retry").click()  # a new job with the same settings: its page, queued
    page.wait_for_url(re.compile(r"/jobs/(?!%d/)\d+/$" % finished.pk))
    job = Job.objects.exclude(pk=finished.pk).get()
    expect(page.locator("#job-status")).to_have_attribute("data-status", "queued")
    expect(page.locator("#job-queued-note")).to_be_visible()
    expect(page.locator("#job-log-empty")).to_contain_text("as soon as a worker starts the job")

    # A worker takes it, enters its training phase and logs.
    job_services.job_start(job_id=job.pk, worker_hostname="w1")
    job_services.job_phase_set(job_id=job.pk, phase="training", index=2, count=5)
    job_services.job_log_append(job_id=job.pk, attempt=1, text="task dna-classification: 96 train records\n")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "running", timeout=POLL_MS)
    expect(page.locator("#job-phase")).to_have_text("Training (step 2 of 5)", timeout=POLL_MS)
    expect(page.locator("#job-log")).to_have_text("task dna-classification: 96 train records", timeout=POLL_MS)
    expect(page.locator("#job-queued-note")).to_be_hidden()
    # Nothing on the page still says the job is queued (the launch message included).
    expect(page.locator("#main")).not_to_contain_text(re.compile("queued", re.I), use_inner_text=True)

    # Training ends; the profile runs: the phase says so while progress stays where training ended.
    job_services.job_heartbeat(job_id=job.pk, progress=0.5, epoch=3, step=30)
    job_services.job_phase_set(job_id=job.pk, phase="optimizing", index=5, count=5)
    job_services.job_log_append(job_id=job.pk, attempt=1, text="applying the int8 profile\n")
    expect(page.locator("#job-phase")).to_have_text("Optimizing (step 5 of 5)", timeout=POLL_MS)
    expect(page.locator("#job-log")).to_contain_text("applying the int8 profile", timeout=POLL_MS)
    expect(page.locator("#job-progress")).to_have_attribute("aria-valuenow", "50")

    job_services.job_succeed(job_id=job.pk)
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded", timeout=POLL_MS)
    page.wait_for_load_state()
    expect(page.locator("#job-phase")).to_be_hidden(timeout=POLL_MS)  # after the reload
    expect(page.locator("#job-log")).to_contain_text("applying the int8 profile")


def test_cancel_asks_for_confirmation(page: Page, member, sign_in) -> None:  # noqa: ANN001
    job = JobFactory(owner=member.user, lab=member.lab)
    sign_in(page, member.user)
    page.goto(f"/jobs/{job.pk}/")
    asked: list[str] = []

    def dismiss(dialog) -> None:  # noqa: ANN001
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.locator("#job-cancel").click()
    page.wait_for_timeout(500)
    assert asked == [f"Cancel job #{job.pk}? It will not run."]
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and not job.cancel_requested

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#job-cancel").click()
    expect(page.locator("#job-status")).to_have_attribute("data-status", "cancelled")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED


def test_a_failed_jobs_page_summarizes_the_error_and_shows_no_empty_panels(
        page: Page, member, sign_in, shot) -> None:  # noqa: ANN001
    classes = ", ".join(f"{0.01 * i:.2f}" for i in range(1000))
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.FAILED, attempts=1,
                     error_message=f"ValueError: a classification target with 1000 classes: [{classes}]",
                     error_traceback="Traceback (most recent call last):\n  ...", finished_at=timezone.now())
    sign_in(page, member.user)
    page.goto(f"/jobs/{job.pk}/")
    summary = page.locator("#job-error-summary")
    expect(summary).to_have_text(
        "ValueError: a classification target with 1000 classes: [0.00, 0.01, 0.02, 0.03, 0.04, … (995 more, 1000 in all)]")
    full = page.locator("#job-error-full pre")
    expect(full).to_be_hidden()
    assert page.locator("#job-error").bounding_box()["height"] < 250  # no wall of red
    page.locator("#job-error-full summary").click()
    expect(full).to_be_visible()
    expect(full).to_contain_text("9.99")
    expect(page.locator("iframe")).to_have_count(0)  # no dashboard can have data
    expect(page.locator("#job-curves, #job-explain, #job-results")).to_have_count(0)
    shot("job-page-failed")


def test_the_404_page_is_styled(page: Page, member, sign_in) -> None:  # noqa: ANN001
    sign_in(page, member.user)
    response = page.goto("/jobs/987654/")
    assert response.status == 404
    expect(page.locator("#error-page h1")).to_have_text("This page does not exist, or it is not visible to you")
    expect(page.locator("#navbar")).to_be_visible()
    background = page.locator("#navbar").evaluate("el => getComputedStyle(el).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # the portal's stylesheet applies
    page.locator("#error-page a", has_text="Home").click()
    page.wait_for_url(re.compile(r"/$"))


# --- charts: bounded metrics, empty states ------------------------------------------------------------

_PARCOORDS_JS = """graph => {
  const plot = graph.querySelector('.js-plotly-plot');
  const trace = plot && plot._fullData && plot._fullData[0];
  if (!trace || !trace.dimensions) return null;
  const last = trace.dimensions[trace.dimensions.length - 1];
  return {label: last.label, range: last.range, cmin: trace.line.cmin, cmax: trace.line.cmax};
}"""


def test_comparing_two_perfect_jobs_keeps_roc_auc_within_0_and_1(page: Page, member, sign_in) -> None:  # noqa: ANN001
    from portal.results.services import result_record
    from tests.browser.conftest import DASH_TIMEOUT_MS, dashboard, wait_for_figure

    jobs = []
    for lr in (1e-3, 1e-4):
        job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED, finished_at=timezone.now(),
                         config={"preset": "tiny", "hyperparameters": {"lr": lr}})
        result_record(job_id=job.pk, baseline_metrics={"roc_auc": 1.0})
        jobs.append(job)
    sign_in(page, member.user)
    page.goto(f"/catalog/compare/?jobs={jobs[0].pk},{jobs[1].pk}")
    frame = dashboard(page, "comparison")
    wait_for_figure(frame, "parallel-graph", timeout_ms=DASH_TIMEOUT_MS)
    drawn = frame.locator("#parallel-graph").evaluate(_PARCOORDS_JS)
    assert drawn == {"label": "test roc_auc", "range": [0, 1], "cmin": 0, "cmax": 1}, drawn


def test_the_trade_offs_empty_state_fits_its_chart(page: Page, member, sign_in) -> None:  # noqa: ANN001
    from tests.browser.conftest import DASH_TIMEOUT_MS, dashboard

    JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    sign_in(page, member.user)
    page.goto("/catalog/")
    frame = dashboard(page, "tradeoffs")
    note = frame.locator("#latency-graph .annotation-text").first
    expect(note).to_contain_text("No compression reports here yet", timeout=DASH_TIMEOUT_MS)
    chart = frame.locator("#latency-graph .main-svg").first.bounding_box()
    text = note.bounding_box()
    assert chart["x"] <= text["x"] and text["x"] + text["width"] <= chart["x"] + chart["width"], (chart, text)
