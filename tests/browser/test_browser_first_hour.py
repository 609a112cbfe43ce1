"""A researcher's first hour, in Chromium, on `make demo`'s own setup: the demo user and lab, the demo
promoter dataset, and the worker processes `make demo` starts (their command lines come from
`portal.web.management.commands.demo.demo_worker_commands`, so this test runs what the demo runs).

(a) an upload validates while a job trains: a training job holds the training worker, and a new
    upload still becomes ready, the job still running;
(b) a corrected mapping re-validates: an upload that is invalid under the strict policy is fixed on
    its page (Edit the mapping: skip the bad records, name the target) into a new version of the same
    stored bytes, which becomes ready; the invalid version shows no "being validated" message;
(c) an impossible job is refused with its fix named: classification on a continuous target is
    refused in the launch form with "use the regression task", and nothing is queued.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]
# Waits on real workers on a loaded two-core machine: generous, and still finite.
WORKER_START_S = 180
VALIDATION_MS = 240_000
JOB_START_S = 300


class DemoWorker:
    """One of `make demo`'s worker processes, run with the test's database, broker keys and media."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.lines: list[str] = []
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self) -> None:
        deadline = time.time() + WORKER_START_S
        while time.time() < deadline:
            if any(" ready." in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"demo worker {' '.join(self.argv)} did not start:\n{''.join(self.lines[-40:])}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@pytest.fixture
def demo_setup(settings, tmp_path: Path, broker) -> tuple[str, str]:  # noqa: ANN001
    """`make demo`'s setup (manage.py demo --setup-only, without collectstatic): the demo user and
    lab, and the demo promoter dataset uploaded through the normal upload service (after `broker` has
    cleared this run's keys, so its validation message stays queued for the workers)."""
    from portal.web.management.commands.demo import Command

    settings.VAR_DIR = tmp_path  # the demo password file goes here, not into the checkout's var/
    username, password = Command()._demo_user()
    call_command("load_demo_data", lab="demo-lab", user=username, only=["synthetic-promoters"],
                 stdout=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    return username, password


@pytest.fixture
def demo_workers(worker_env: dict[str, str], broker) -> Iterator[list[DemoWorker]]:  # noqa: ANN001
    """The workers exactly as `make demo` starts them. `demo_worker_commands` must exist: without it the
    demo's setup cannot be reproduced, and the test fails (it never skips)."""
    from portal.web.management.commands import demo

    commands: Callable[[], dict[str, list[str]]] | None = getattr(demo, "demo_worker_commands", None)
    assert commands is not None, (
        "portal/web/management/commands/demo.py has no demo_worker_commands(): make demo's worker command lines "
        "must come from one function this test can run")
    argvs = list(commands().values())
    assert argvs and all(isinstance(a, list) and a for a in argvs), argvs
    workers = [DemoWorker([str(part) for part in argv], worker_env) for argv in argvs]
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def _wait(predicate: Callable[[], object], timeout: float, what: str, workers: list[DemoWorker]) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    logs = "\n".join("".join(w.lines[-20:]) for w in workers)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{logs}")


def _assay_csv(n: int = 70, bad: tuple[int, ...] = (55, 60, 65)) -> bytes:
    """DNA under a non-default header (`seq`), a continuous `activity`, and a few records with characters
    no nucleotide alphabet has, after the first 50 records (so the page's guess still sees DNA)."""
    rng = random.Random(3)
    rows = ["seq,activity"]
    for i in range(n):
        seq = "".join(rng.choice("ACGT") for _ in range(30))
        if i in bad:
            seq = seq[:10] + "-12-" + seq[14:]
        rows.append(f"{seq},{rng.uniform(0, 10):.3f}")
    return ("\n".join(rows) + "\n").encode()


def _promoters_csv(n: int = 60) -> bytes:
    rng = random.Random(5)
    rows = ["sequence,label"] + [f"{''.join(rng.choice('ACGT') for _ in range(40))},{i % 2}" for i in range(n)]
    return ("\n".join(rows) + "\n").encode()


def _upload(page: Page, name: str, content: bytes, *, task: str | None = None, wrong_task: str | None = None) -> None:
    page.goto("/datasets/upload/")
    page.locator("#upload-file").set_input_files(files=[{"name": name, "mimeType": "text/csv", "buffer": content}])
    expect(page.locator("#upload-columns")).to_be_visible()
    # The page asks the server what the file holds and preselects it; the researcher keeps the guess.
    expect(page.locator("#modality-guess")).to_contain_text("Guessed from the file")
    expect(page.locator("#id_modality")).to_have_value("dna")
    warning = page.locator("#upload-mapping-warning")
    if wrong_task:  # a task whose target column the header lacks is flagged before anything is sent
        page.select_option("#id_task", wrong_task)
        page.select_option("#id_target_cols", "")  # back to the task's default target column
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("choose the target column")
    if task:
        page.select_option("#id_task", task)
        expect(warning).to_be_hidden()
    page.locator("#upload-submit").click()
    page.wait_for_url("**/datasets/*/")


def test_browser_first_hour_on_the_demo_setup(page: Page, demo_setup, demo_workers, shot) -> None:  # noqa: ANN001
    from mlcore.demo_data import DEMO_DATASETS

    username, password = demo_setup
    demo = Dataset.objects.get(lab__slug="demo-lab", name=DEMO_DATASETS["synthetic-promoters"].name)
    _wait(lambda: Dataset.objects.filter(pk=demo.pk, status=Dataset.Status.READY).exists(), VALIDATION_MS / 1000,
          "the demo dataset to be validated", demo_workers)
    demo.refresh_from_db()

    # (a) a job trains (long enough to hold the training worker for the whole journey) ...
    job = job_services.job_submit(user=demo.owner, dataset=demo, task_key="dna-classification", preset="tiny",
                                  hyperparameters={"epochs": 200}, name="holds the training worker")
    _wait(lambda: Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).exists(), JOB_START_S,
          "the training job to start", demo_workers)

    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)

    # ... and an upload still validates meanwhile.
    _upload(page, "promoters-small.csv", _promoters_csv(), task="dna-classification", wrong_task="dna-regression")
    expect(page.locator("#dataset-status")).to_have_attribute("data-status", "ready", timeout=VALIDATION_MS)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING, f"the job ended ({job.status}) before the upload was validated"
    shot("first-hour-01-validated-while-training")

    # (b) an upload invalid under the strict policy ...
    _upload(page, "assay.csv", _assay_csv())
    expect(page.locator("#dataset-status")).to_have_attribute("data-status", "invalid", timeout=VALIDATION_MS)
    expect(page.locator("#dataset-invalid")).to_be_visible()
    expect(page.locator("#dataset-validating")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("being validated")
    v1 = Dataset.objects.get(name="assay", version=1)
    assert v1.status == Dataset.Status.INVALID and v1.schema.get("input_cols") == ["seq"]  # the guessed column
    shot("first-hour-02-invalid")
    # ... is fixed from its page: skip the bad records, name the target; a new version of the same bytes.
    remap = page.locator("#dataset-remap")
    expect(remap.locator("details")).to_have_attribute("open", "")
    page.fill("#remap_target_cols", "activity")
    page.check("#remap_policy_skip")
    page.locator("#remap-submit").click()
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] != str(v1.pk))
    expect(page.locator("#messages")).to_contain_text("new version reading the stored bytes again")
    expect(page.locator("#dataset-status")).to_have_attribute("data-status", "ready", timeout=VALIDATION_MS)
    v2 = Dataset.objects.get(name="assay", version=2)
    assert (v2.policy, v2.schema["target_cols"], v2.original_file.name) == ("skip", ["activity"], v1.original_file.name)
    assert v2.validation_report["invalid"] == 3
    expect(page.locator("#dataset-versions")).to_contain_text("v1")
    shot("first-hour-03-fixed")

    # (c) classification on the continuous activity is refused in the launch form, with the fix named.
    page.goto(f"/jobs/new/?dataset={v2.pk}")
    page.select_option("#id_task", "dna-classification")
    page.locator("#launch-submit").click()
    errors = page.locator("#launch-errors")
    expect(errors).to_be_visible()
    expect(page.locator("#error-task")).to_contain_text("use the regression task (dna-regression)")
    assert not Job.objects.filter(dataset=v2).exists()
    shot("first-hour-04-refused")

    job_services.job_cancel(job_id=job.pk, user=demo.owner)
