"""The portal end to end in Chromium, as a researcher uses it: sign in, upload a demo file through the
upload page's file input, watch the dataset page turn ready by itself, launch a `tiny` job, watch its
progress bar reach 100 % and its training curves appear, clone it with another seed and the int8
profile, find both in the catalog (with its compression trade-offs), compare them, and see them on the
home page. A real Celery worker does the validation and the training. Each step leaves a screenshot
under test-results/ (portal-*.png)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from mlcore.demo_data import DEMO_DATASETS, demo_dataset_write
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from tests.browser.conftest import dashboard, wait_for_figure

pytestmark = pytest.mark.django_db(transaction=True)

# The smallest real demo set (178 wines, 13 measurements, 3 cultivars): a tiny model trains in seconds.
DEMO = "wine-cultivars"
EPOCHS = 2
JOB_TIMEOUT_MS = 180_000


def _watch_job_finish(page: Page, shot, name: str) -> int:  # noqa: ANN001
    """On a job page: the bar and status update by themselves until the job succeeds at 100 %, and
    the live training curves (a Dash app) draw the loss and the primary metric. Returns the job id."""
    job_id = int(re.search(r"/jobs/(\d+)/", page.url).group(1))
    bar = page.locator("#job-progress")
    expect(bar).to_be_visible()
    shot(f"{name}-started")
    expect(page.locator("#job-status")).to_have_attribute("data-status", "succeeded", timeout=JOB_TIMEOUT_MS)
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(bar.locator(".progress-bar")).to_have_text("100%")
    expect(page.locator("#job-epoch")).to_have_text(str(EPOCHS))
    # Finished, the page reloads once to show what the server renders for a finished job.
    expect(page.locator("#job-metrics")).to_be_visible()
    curves = dashboard(page, "training_curves")
    loss = wait_for_figure(curves, "loss-graph")
    metric = wait_for_figure(curves, "metric-graph")
    assert sum(t["points"] for t in loss) >= EPOCHS, loss  # per step and per epoch, train and validation
    assert any(t["points"] for t in metric), metric
    shot(f"{name}-finished")
    return job_id


def test_browser_portal_upload_validate_launch_watch_catalog_compare(
    page: Page, member, sign_in, shot, start_worker, tmp_path: Path,  # noqa: ANN001
) -> None:
    spec = DEMO_DATASETS[DEMO]
    path = demo_dataset_write(DEMO, tmp_path)

    # 1. Sign in.
    sign_in(page, member.user)
    expect(page.locator("#nav-user")).to_have_text(member.user.username)
    shot("portal-01-home")

    # 2. Upload through the file input: the header's columns become the mapping's choices.
    page.locator("#nav-upload").click()
    page.wait_for_url("**/datasets/upload/")  # loaded: the page's script listens for the chosen file
    page.select_option("#id_modality", spec.modality)
    page.select_option("#id_task", spec.task_keys[0])
    page.locator("#upload-file").set_input_files(path)
    expect(page.locator("#upload-columns-list")).to_contain_text(spec.target_cols[0])
    target = page.locator("select#id_target_cols")  # a select of the header's columns, the default picked
    expect(target).to_have_values([spec.target_cols[0]])
    page.fill("#id_name", "wine")
    shot("portal-02-upload")
    page.locator("#upload-submit").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/$"))

    # 3. No worker runs yet: the page says it waits. It must turn ready by itself, without a reload,
    # once a worker comes up and validates the file.
    expect(page.locator("#dataset-validating")).to_be_visible()
    expect(page.locator("#dataset-status")).not_to_have_attribute("data-status", "ready")
    page.evaluate("window.__sameDocument = true")
    shot("portal-03-dataset-validating")
    worker = start_worker()
    expect(page.locator("#dataset-status")).to_have_attribute("data-status", "ready", timeout=60_000)
    expect(page.locator("#report-clean")).to_be_visible()
    expect(page.locator("#dataset-preview tbody tr").first).to_be_visible()
    expect(page.locator("#dataset-rows")).to_have_text(str(spec.n_records))
    assert page.evaluate("window.__sameDocument === true"), "the dataset page reloaded instead of updating"
    dataset = Dataset.objects.get(name="wine", lab=member.lab)
    assert dataset.status == Dataset.Status.READY and dataset.schema["target_cols"] == list(spec.target_cols)
    shot("portal-04-dataset-ready")

    # 4. Launch a tiny job from the dataset page (2 epochs, through the advanced panel).
    page.locator("#dataset-launch").click()
    page.wait_for_url(re.compile(r"/jobs/new/\?dataset="))
    expect(page.locator("#id_dataset")).to_have_value(str(dataset.pk))
    page.select_option("#id_task", spec.task_keys[0])
    page.locator("#profile-card-baseline").click()
    page.locator("#preset-card-tiny").click()
    page.locator("#advanced-toggle").click()
    page.fill("#id_name", "wine-first")
    # A bad value: the error appears next to its field, what was typed is kept, nothing is launched.
    page.fill("#id_hp_epochs", "0")
    page.locator("#launch-submit").click()
    expect(page.locator("#error-hp_epochs")).to_be_visible()
    expect(page.locator("#id_hp_epochs")).to_have_value("0")
    expect(page.locator("#id_name")).to_have_value("wine-first")
    assert not Job.objects.exists()
    page.fill("#id_hp_epochs", str(EPOCHS))
    shot("portal-05-launch")
    page.locator("#launch-submit").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))

    # 5. Watch it: progress to 100 %, curves drawn.
    first = _watch_job_finish(page, shot, "portal-06-job")
    job = Job.objects.get(pk=first)
    assert job.status == Job.Status.SUCCEEDED and job.config["preset"] == "tiny", worker.output()[-3000:]

    # 6. Clone it with another seed and the int8 profile: a second job to compare, with a
    # compression report for the catalog's trade-offs.
    page.locator("#job-clone").click()
    page.wait_for_url(re.compile(r"/jobs/new/\?clone="))
    expect(page.locator("#clone-banner")).to_be_visible()
    expect(page.locator("#id_hp_epochs")).to_have_value(str(EPOCHS))  # the settings of the first job
    page.fill("#id_hp_seed", "1")
    page.locator("#profile-card-int8").click()
    page.fill("#id_name", "wine-int8")
    page.locator("#launch-submit").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    second = _watch_job_finish(page, shot, "portal-07-clone")
    assert second != first

    # 7. The catalog lists both, with the compression trade-offs of the listed jobs (the int8 job's
    # baseline and optimized model); a filter is a permalink.
    page.locator("#nav-catalog").click()
    page.wait_for_url("**/catalog/")
    expect(page.locator(f"#catalog-row-{first}")).to_be_visible()
    expect(page.locator(f"#catalog-row-{second}")).to_be_visible()
    tradeoffs = dashboard(page, "tradeoffs")
    wait_for_figure(tradeoffs, "latency-graph")
    wait_for_figure(tradeoffs, "size-graph")
    shot("portal-08-catalog")
    page.select_option("#id_status", "succeeded")
    page.locator("#catalog-apply").click()
    expect(page).to_have_url(re.compile(r"[?&]status=succeeded"))
    expect(page.locator("#catalog-table tbody tr")).to_have_count(2)
    # Its dashboard drawn before leaving the page: a Dash callback still running when the next page
    # renders can save a stale session over the next page's dashboard arguments (see the report on
    # django-plotly-dash's session writes), and the next page's dashboard would answer 404.
    wait_for_figure(dashboard(page, "tradeoffs"), "latency-graph")

    # 8. Compare the two: config diff (the seed), metrics, overlaid curves.
    expect(page.locator("#compare-button")).to_be_disabled()
    page.locator(f"#select-{first}").check()
    page.locator(f"#select-{second}").check()
    expect(page.locator("#compare-count")).to_contain_text("2 jobs selected")
    page.locator("#compare-button").click()
    page.wait_for_url(re.compile(r"/catalog/compare/\?jobs="))
    expect(page.locator("#compare-jobs thead th[data-job]")).to_have_count(2)
    expect(page.locator("#compare-diff tr.diff-row[data-key$='seed']")).to_have_count(1)
    expect(page.locator("#compare-diff tr.diff-row[data-key$='profile']")).to_have_count(1)
    expect(page.locator("#compare-metrics-table tbody tr").first).to_be_visible()
    page.locator("#diff-only").check()
    expect(page.locator("#compare-diff tr.same-row").first).to_be_hidden()
    overlay = dashboard(page, "comparison")
    curves = wait_for_figure(overlay, "curves-graph", lambda traces: sum(bool(t["points"]) for t in traces) >= 2,
                             what="does not overlay both jobs' curves")
    assert len({t["name"] for t in curves if t["points"]}) >= 2, curves
    # Parallel coordinates: one line per job through the settings that differ and the test metric.
    parallel = wait_for_figure(overlay, "parallel-graph")
    assert [t["points"] for t in parallel if t["type"] == "parcoords"] == [2], parallel
    shot("portal-09-compare")

    # 9. Home: nothing running, both results listed.
    page.locator("#nav-home").click()
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator("#empty-running")).to_be_visible()
    expect(page.locator("#recent-results")).to_contain_text("wine-first")
    expect(page.locator("#recent-results")).to_contain_text("wine-int8")
    shot("portal-10-home-results")
