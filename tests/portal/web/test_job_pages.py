"""The launch form, the job page (status feed, cancel, retry, clone, downloads) and their permissions,
against the real database and the real services."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from mlcore import catalog
from portal.accounts.models import Membership, Visibility
from portal.datasets.models import Dataset
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Artifact
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(member, lab) -> Dataset:
    return DatasetFactory(owner=member, lab=lab, name="promoters", modality="dna",
                          schema={"split_col": "fold"}, row_count=120)


@pytest.fixture
def job(member, dataset) -> Job:
    return job_services.job_submit(user=member, dataset=dataset, task_key="dna-classification",
                                   profile_key="int8", preset="tiny", hyperparameters={"lr": 0.01, "epochs": 3},
                                   name="first try")


@pytest.fixture
def private_job(outsider, other_lab) -> Job:
    """Another lab's private job: every page and action must answer 404 to the member."""
    return JobFactory(owner=outsider, lab=other_lab, visibility=Visibility.PRIVATE)


def _set(job: Job, **fields) -> Job:  # noqa: ANN003
    """Put a job in a state (tests stand in for the worker, which moves jobs through the services)."""
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


def _launch_data(dataset: Dataset, lab, **changes) -> dict:  # noqa: ANN001, ANN003
    data = {"dataset": dataset.pk, "task": "dna-classification", "profile": "baseline", "preset": "tiny",
            "device": "cpu", "lab": lab.pk, "visibility": "lab", "name": "from the form"}
    data.update(changes)
    return data


def _html(response) -> str:  # noqa: ANN001
    return response.content.decode()


# --- access ---------------------------------------------------------------------------------------

def _job_urls(job_id: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("web:job_detail", args=[job_id])),
        ("get", reverse("web:job_status", args=[job_id])),
        ("get", reverse("web:job_log", args=[job_id])),
        ("post", reverse("web:job_cancel", args=[job_id])),
        ("post", reverse("web:job_retry", args=[job_id])),
        ("get", reverse("web:job_launch") + f"?clone={job_id}"),
        ("get", reverse("web:compare") + f"?jobs={job_id}"),
    ]


def test_anonymous_users_are_sent_to_sign_in_from_every_job_page(job):
    client = Client()
    urls = _job_urls(job.pk) + [("get", reverse("web:job_launch")), ("get", reverse("web:catalog"))]
    feeds = {reverse("web:job_status", args=[job.pk]), reverse("web:job_log", args=[job.pk])}
    for method, url in urls:
        response = getattr(client, method)(url)
        if url in feeds:  # polled by a script: 401 in JSON, not a login page with 200 after the redirect
            assert response.status_code == 401 and response["Content-Type"] == "application/json", url
            assert "sign in" in response.json()["detail"] and response.json()["login_url"] == reverse("login")
            continue
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    assert Job.objects.count() == 1  # the retry did nothing


def test_another_labs_private_job_is_404_on_every_page_and_action(member_client, private_job):
    for method, url in _job_urls(private_job.pk):
        assert getattr(member_client, method)(url).status_code == 404, url
    private_job.refresh_from_db()
    assert private_job.status == Job.Status.QUEUED and not private_job.cancel_requested
    assert Job.objects.count() == 1


def test_a_public_job_of_another_lab_is_visible_but_its_owner_alone_may_cancel_it(member_client, outsider, other_lab):
    public = JobFactory(owner=outsider, lab=other_lab, visibility=Visibility.PUBLIC)
    assert member_client.get(reverse("web:job_detail", args=[public.pk])).status_code == 200
    response = member_client.post(reverse("web:job_cancel", args=[public.pk]), follow=True)
    assert "was not cancelled" in _html(response)
    public.refresh_from_db()
    assert public.status == Job.Status.QUEUED


# --- launch ---------------------------------------------------------------------------------------

def test_launch_page_offers_ready_visible_datasets_and_the_catalog(member_client, dataset, lab, outsider, other_lab):
    DatasetFactory(owner=dataset.owner, lab=lab, name="still-validating", status=Dataset.Status.VALIDATING)
    DatasetFactory(owner=outsider, lab=other_lab, name="not-yours", visibility=Visibility.PRIVATE)
    response = member_client.get(reverse("web:job_launch"))
    html = _html(response)
    assert response.status_code == 200
    assert 'id="launch-form"' in html and 'id="launch-submit"' in html
    assert "promoters v1" in html
    assert "still-validating" not in html and "not-yours" not in html
    for profile in catalog.PROFILES.values():  # every profile is a card saying what it trades
        assert f'id="profile-card-{profile.key}"' in html and escape(profile.description) in html
    for preset in catalog.PRESETS:
        assert f'id="preset-card-{preset}"' in html
    for name in catalog.HYPERPARAMETERS:
        assert f'name="hp_{name}"' in html
    assert 'placeholder="0.01"' in html  # weight_decay's default is shown
    assert re.search(rf'<option value="{lab.pk}" selected>', html)  # the current lab is preselected


def test_launch_with_a_dataset_lists_only_the_tasks_that_fit_it(member_client, dataset, member, lab):
    html = _html(member_client.get(reverse("web:job_launch") + f"?dataset={dataset.pk}"))
    assert re.search(rf'<option value="{dataset.pk}"[^>]*selected', html)
    task_select = re.search(r'<select name="task".*?</select>', html, re.S).group(0)
    dna = {t.key for t in catalog.tasks_for_modality("dna")}
    offered = set(re.findall(r'<option value="([a-z-]+)"', task_select))
    assert offered == dna
    assert "fold" in html  # the dataset's split column is named in the summary


def test_launch_with_a_dataset_you_cannot_use_says_so(member_client, outsider, other_lab):
    hidden = DatasetFactory(owner=outsider, lab=other_lab, visibility=Visibility.PRIVATE)
    response = member_client.get(reverse("web:job_launch") + f"?dataset={hidden.pk}")
    assert response.status_code == 200
    assert "is not ready or not visible to you" in _html(response)


def test_submitting_the_form_creates_a_queued_job_through_the_service(member_client, member, dataset, lab):
    data = _launch_data(dataset, lab, profile="pruned", preset="small", hp_lr="0.0005", hp_augment="true",
                        hp_val_frac="0.2", budget="0.05")
    response = member_client.post(reverse("web:job_launch"), data)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("web:job_detail", args=[job.pk])
    assert (job.owner, job.lab, job.dataset, job.status) == (member, lab, dataset, Job.Status.QUEUED)
    assert (job.task_key, job.profile_key, job.name) == ("dna-classification", "pruned", "from the form")
    assert job.config["preset"] == "small"
    assert job.config["overrides"] == {"lr": 0.0005, "augment": True, "val_frac": 0.2}
    assert job.config["hyperparameters"]["epochs"] == catalog.PRESET_TRAINING["small"]["epochs"]
    assert job.config["budget"] == 0.05
    assert job.config["device"] == {"kind": "cpu", "gpu_count": 0}


def test_a_gpu_job_asks_for_its_gpus(member_client, dataset, lab):
    job_services.worker_seen_record(hostname="gpu@node-1", queues=["gpu", "gpu-x2"], gpus=2)
    member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, device="gpu", gpu_count="2"))
    job = Job.objects.get()
    assert (job.device, job.gpu_count) == ("gpu", 2)


def test_the_form_refuses_a_gpu_job_no_worker_can_take_and_says_why(member_client, dataset, lab):
    response = member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, device="gpu"))
    assert response.status_code == 400 and not Job.objects.exists()
    assert "no GPU worker is registered" in _html(response) and 'id="error-device"' in _html(response)


def test_the_form_refuses_a_missing_target_column_and_takes_the_one_picked(member_client, member, lab):
    from django.core.files.base import ContentFile

    dataset = DatasetFactory(owner=member, lab=lab, name="assay", modality="dna", original_filename="assay.csv",
                             original_file=ContentFile(b"sequence,active\nACGT,1\nTTGA,0\n", name="assay.csv"))
    response = member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab))
    html = _html(response)
    assert response.status_code == 400 and not Job.objects.exists()
    assert 'id="error-target_col"' in html and "has no column &#x27;label&#x27;" in html
    assert "Pick the target column" in html
    response = member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, target_col="active"))
    assert response.status_code == 302 and Job.objects.get().config["target_cols"] == ["active"]


def test_a_bad_hyperparameter_is_reported_next_to_its_field_and_the_input_is_kept(member_client, dataset, lab):
    data = _launch_data(dataset, lab, hp_lr="fast", hp_epochs="0", hp_precision="fp8", name="keep me")
    response = member_client.post(reverse("web:job_launch"), data)
    html = _html(response)
    assert response.status_code == 400
    assert Job.objects.count() == 0
    lr_field = re.search(r'<div class="mb-3" id="field-hp_lr">.*?</div>\s*</div>', html, re.S)
    assert lr_field is not None
    assert 'value="fast"' in lr_field.group(0) and "is-invalid" in lr_field.group(0)
    assert "expected a number" in re.search(r'id="error-hp_lr">([^<]*)<', html).group(1)
    assert "below the minimum 1" in re.search(r'id="error-hp_epochs">([^<]*)<', html).group(1)
    assert "fp8" in re.search(r'id="error-hp_precision">([^<]*)<', html).group(1)
    assert 'value="keep me"' in html
    summary = re.search(r'id="launch-errors".*?</div>\s*</div>', html, re.S).group(0)
    assert 'href="#error-hp_lr"' in summary and 'href="#error-hp_epochs"' in summary
    assert 'id="advanced-panel"' in html and re.search(r'class="collapse show" id="advanced-panel"', html)


def test_a_task_that_does_not_fit_the_dataset_is_refused_next_to_the_task(member_client, dataset, lab):
    response = member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, task="protein-classification"))
    assert response.status_code == 400
    assert re.search(r'id="error-task">[^<]+<', _html(response))
    assert Job.objects.count() == 0


def test_the_split_method_is_submitted_and_one_that_does_not_fit_is_refused_next_to_it(member_client, dataset, lab):
    response = member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, split="scaffold"))
    assert response.status_code == 400
    assert "needs molecules" in re.search(r'id="error-split">([^<]*)<', _html(response)).group(1)
    assert Job.objects.count() == 0
    member_client.post(reverse("web:job_launch"), _launch_data(dataset, lab, split="stratified"))
    job = Job.objects.get()
    assert job.config["split"] == "stratified"
    clone_page = _html(member_client.get(reverse("web:job_launch") + f"?clone={job.pk}"))
    assert re.search(r'<option value="stratified" selected>', clone_page)


def test_service_errors_land_on_their_field(member_client, member, dataset, lab):
    """A dataset that stops being ready between page load and submit: job_submit refuses it."""
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.INVALID)
    extra = JobFactory(owner=member, lab=lab, dataset=dataset)  # a job to clone keeps the dataset choosable
    data = _launch_data(dataset, lab, clone_of=extra.pk)
    response = member_client.post(reverse("web:job_launch"), data)
    assert response.status_code == 400
    assert "only a ready dataset can be trained on" in re.search(r'id="error-dataset">([^<]*)<', _html(response)).group(1)
    assert Job.objects.count() == 1


def test_a_viewer_cannot_launch(dataset, lab):
    viewer = MembershipFactory(lab=lab, role=Membership.Role.VIEWER).user
    client = Client()
    client.force_login(viewer)
    assert 'id="launch-empty-labs"' in _html(client.get(reverse("web:job_launch")))
    response = client.post(reverse("web:job_launch"), _launch_data(dataset, lab))
    assert response.status_code == 400 and Job.objects.count() == 0
    assert 'id="launch-empty-labs"' in _html(response)


def test_clone_prefills_the_form_and_submits_a_new_job(member_client, member, job, lab):
    html = _html(member_client.get(reverse("web:job_launch") + f"?clone={job.pk}"))
    assert 'id="clone-banner"' in html
    assert re.search(r'<option value="dna-classification" [^>]*selected', html)
    assert re.search(r'value="int8"[^>]*checked|checked[^>]*value="int8"', html)
    assert re.search(r'name="hp_lr" value="0.01"', html) and re.search(r'name="hp_epochs" value="3"', html)
    assert 'value="first try"' in html
    data = _launch_data(job.dataset, lab, profile="int8", hp_lr="0.02", hp_epochs="3", clone_of=job.pk)
    response = member_client.post(reverse("web:job_launch"), data)
    clone = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("web:job_detail", args=[clone.pk])
    assert clone.config["overrides"] == {"lr": 0.02, "epochs": 3}
    assert clone.dataset_id == job.dataset_id and clone.profile_key == "int8"


def test_a_job_on_a_dataset_the_user_cannot_see_can_still_be_cloned(lab, member_client, member, dataset):
    """A lab job whose owner keeps the dataset private: the clone uses the exact dataset the job used."""
    colleague = MembershipFactory(lab=lab).user
    private_data = DatasetFactory(owner=colleague, lab=lab, visibility=Visibility.PRIVATE)
    shared = job_services.job_submit(user=colleague, dataset=private_data, task_key="dna-classification")
    html = _html(member_client.get(reverse("web:job_launch") + f"?clone={shared.pk}"))
    assert re.search(rf'<option value="{private_data.pk}"[^>]*selected', html)
    response = member_client.post(reverse("web:job_launch"), _launch_data(private_data, lab, clone_of=shared.pk))
    assert response.status_code == 302
    assert Job.objects.filter(owner=member, dataset=private_data).count() == 1
    # Without the clone the same dataset is not on offer.
    response = member_client.post(reverse("web:job_launch"), _launch_data(private_data, lab))
    assert response.status_code == 400 and re.search(r'id="error-dataset">[^<]+<', _html(response))


# --- the job page ---------------------------------------------------------------------------------

def test_a_queued_job_page_shows_its_state_and_polls(member_client, job):
    html = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    assert 'id="job-status"' in html and 'data-status="queued"' in html
    assert re.search(r'id="job-progress"', html) and 'aria-valuenow="0"' in html
    assert 'data-finished="false"' in html and reverse("web:job_status", args=[job.pk]) in html
    assert 'id="job-cancel-form"' in html and 'id="job-retry-form" hidden' in html
    assert f'href="{reverse("web:job_launch")}?clone={job.pk}"' in html
    assert 'id="job-curves"' in html and "js/job.js" in html
    assert "Waiting for a free CPU worker" in html
    assert 'id="job-results"' not in html  # nothing to show until it ends


def test_status_json_reports_progress(member_client, job):
    _set(job, status=Job.Status.RUNNING, progress=0.42, epoch=2, step=37, attempts=1, worker_hostname="gpu-7",
         started_at=timezone.now())
    data = member_client.get(reverse("web:job_status", args=[job.pk])).json()
    assert data["status"] == "running" and data["percent"] == 42 and not data["finished"]
    assert (data["epoch"], data["step"], data["attempts"], data["worker"]) == (2, 37, 1, "gpu-7")
    _set(job, status=Job.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now())
    data = member_client.get(reverse("web:job_status", args=[job.pk])).json()
    assert data["finished"] and data["percent"] == 100 and data["finished_at"]


def test_cancel_a_queued_job_cancels_it(member_client, job):
    response = member_client.post(reverse("web:job_cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert f"Job #{job.pk} is cancelled." in _html(response)
    assert member_client.get(reverse("web:job_cancel", args=[job.pk])).status_code == 405


def test_cancel_a_running_job_asks_the_worker_to_stop(member_client, job):
    _set(job, status=Job.Status.RUNNING)
    response = member_client.post(reverse("web:job_cancel", args=[job.pk]), follow=True)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING and job.cancel_requested
    assert "is asked to stop" in _html(response) and "Cancelling…" in _html(response)


def test_cancel_a_finished_job_says_why_not(member_client, job):
    _set(job, status=Job.Status.SUCCEEDED, finished_at=timezone.now())
    html = _html(member_client.post(reverse("web:job_cancel", args=[job.pk]), follow=True))
    assert "was not cancelled" in html and "succeeded" in html


def test_a_lab_member_cannot_cancel_a_colleagues_job(lab, job):
    colleague = MembershipFactory(lab=lab).user
    client = Client()
    client.force_login(colleague)
    html = _html(client.post(reverse("web:job_cancel", args=[job.pk]), follow=True))
    assert escape("only the job's owner or an owner of its lab can cancel it") in html
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED


def test_retry_creates_a_new_job_with_the_same_config(member_client, job):
    _set(job, status=Job.Status.FAILED, finished_at=timezone.now(), error_message="CUDA out of memory")
    page = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    assert 'id="job-error"' in page and "CUDA out of memory" in page and 'id="job-retry-form" hidden' not in page
    response = member_client.post(reverse("web:job_retry", args=[job.pk]))
    new = Job.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("web:job_detail", args=[new.pk])
    assert new.status == Job.Status.QUEUED
    assert {k: v for k, v in new.config.items()} == job.config
    assert (new.task_key, new.profile_key, new.dataset_id) == (job.task_key, job.profile_key, job.dataset_id)


def _finish_with_results(job: Job, tmp_path: Path, environment: dict | None = None,
                         **report_extra: Any) -> dict[str, Artifact]:
    _set(job, status=Job.Status.SUCCEEDED, progress=1.0, attempts=1, epoch=3, step=30, worker_hostname="cpu-1",
         started_at=timezone.now(), finished_at=timezone.now())
    result_services.result_record(
        job_id=job.pk,
        baseline_metrics={"roc_auc": 0.91, "accuracy": 0.85, "loss": 0.3},
        optimized_metrics={"roc_auc": 0.905, "accuracy": 0.84},
        compression_report={
            "profile": "int8", "primary_metric": "roc_auc", "greater_is_better": True, "metric_delta": -0.005,
            "speedup_b1": 0.9, "speedup_b32": 1.8, "size_ratio": 3.2, "encoder_weight_ratio": 3.9,
            "params_ratio": 1.0, "threads": 2, "device": "cpu", "notes": ["int8 is slower at batch 1"],
            "baseline": {"bytes": 320000, "params": 80000, "latency_ms_b1": 1.2, "latency_ms_b32": 9.0,
                         "throughput_b32": 3500.0, "sparsity": 0.0, "dtype": "float32", "encoder_weight_bytes": 250000},
            "optimized": {"bytes": 100000, "params": 80000, "latency_ms_b1": 1.33, "latency_ms_b32": 5.0,
                          "throughput_b32": 6400.0, "sparsity": 0.0, "dtype": "qint8", "encoder_weight_bytes": 64000},
            **report_extra,
        },
        environment=environment,
    )
    files = {
        "model": b"PK model zip", "predictions": b"id,line,label,prediction\n1,2,1,1\n",
        "log": "".join(f"log line {i}\n" for i in range(500)).encode(), "checkpoint": b"resume point",
    }
    stored = {}
    for kind, content in files.items():
        path = tmp_path / f"{kind}.bin"
        path.write_bytes(content)
        stored[kind] = result_services.artifact_create(job_id=job.pk, kind=kind, path=path)
    return stored


def test_a_finished_job_shows_metrics_report_downloads_and_the_log_tail(member_client, job, tmp_path):
    stored = _finish_with_results(job, tmp_path)
    html = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    assert 'data-finished="true"' in html and 'aria-valuenow="100"' in html
    metrics = re.search(r'<table[^>]*id="job-metrics".*?</table>', html, re.S).group(0)
    assert re.search(r'data-metric="roc_auc">\s*<th scope="row">roc_auc <span class="badge[^"]*">primary', metrics)
    assert "0.9100" in metrics and "0.9050" in metrics and "-0.0050" in metrics
    report = re.search(r'id="job-report".*?</section>', html, re.S).group(0)
    assert "3.20× smaller" in report and "1.80× faster" in report and "int8 is slower at batch 1" in report
    assert "qint8" in report and "312.5\xa0KB" in report
    for kind in ("model", "predictions", "log"):
        assert reverse("web:job_artifact_download", args=[job.pk, stored[kind].pk]) in html
    assert reverse("web:job_artifact_download", args=[job.pk, stored["checkpoint"].pk]) not in html
    log = re.search(r'<pre[^>]*id="job-log"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert log.splitlines()[-1] == "log line 499" and "log line 299" not in log and "log line 300" in log
    assert 'id="job-cancel-form"' not in html
    assert 'id="job-environment"' not in html  # recorded before environments existed: no line, no error


def test_a_gpu_jobs_report_shows_the_gpu_latencies_beside_the_cpu_ones(member_client, job, tmp_path):
    gpu = {"device": "NVIDIA H200", "baseline": {"latency_ms_b1": 0.41, "latency_ms_b32": 0.031},
           "optimized": {"latency_ms_b1": 0.52, "latency_ms_b32": 0.0155}, "speedup_b1": 0.79, "speedup_b32": 2.0}
    env = {"device": "cuda", "device_name": "NVIDIA H200", "precision": "bf16", "torch": "2.11.0+cu130",
           "cuda": "13.0", "threads": 16, "world_size": 1}
    _finish_with_results(job, tmp_path, environment=env, profile="slim", gpu=gpu)
    html = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    environment = re.search(r'id="job-environment">(.*?)</p>', html, re.S).group(1)
    assert environment == "Trained on CUDA (NVIDIA H200) · bf16 · torch 2.11.0+cu130, CUDA 13.0."
    report = re.search(r'id="job-report".*?</section>', _html(member_client.get(reverse("web:job_detail", args=[job.pk]))),
                       re.S).group(0)
    labels = re.findall(r'<th scope="row">([^<]*)</th>', report)
    assert labels.index("CPU latency, batch 32 (ms)") < labels.index("GPU latency, batch 1 (ms, NVIDIA H200)")
    assert "GPU latency, batch 32 (ms, NVIDIA H200)" in labels
    assert "2.00× faster" in report and "1.27× slower" in report and "0.79× faster" not in report
    # a CPU job's report has no GPU rows
    job.result.compression_report.pop("gpu")
    job.result.save()
    page = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    assert "GPU latency" not in page and "CPU latency, batch 1 (ms)" in page


def test_downloads_are_access_checked(member_client, outsider_client, job, tmp_path, outsider, other_lab):
    stored = _finish_with_results(job, tmp_path)
    url = reverse("web:job_artifact_download", args=[job.pk, stored["predictions"].pk])
    response = member_client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"id,line,label,prediction\n1,2,1,1\n"
    assert "attachment" in response["Content-Disposition"]
    _set(job, visibility=Visibility.PRIVATE)
    assert outsider_client.get(url).status_code == 404  # another lab's private job
    assert Client().get(url).status_code == 302  # anonymous: sign in first
    # An artifact id of one job under another job's address is not found either.
    mine = JobFactory(owner=outsider, lab=other_lab)
    assert outsider_client.get(reverse("web:job_artifact_download", args=[mine.pk, stored["model"].pk])).status_code == 404
    # Checkpoints are the worker's, not a download.
    checkpoint = reverse("web:job_artifact_download", args=[job.pk, stored["checkpoint"].pk])
    assert member_client.get(checkpoint).status_code == 404


def test_a_log_or_download_whose_file_storage_lost_does_not_break_the_page(member_client, job, tmp_path):
    stored = _finish_with_results(job, tmp_path)
    default_storage.delete(stored["log"].file.name)
    default_storage.delete(stored["model"].file.name)
    html = _html(member_client.get(reverse("web:job_detail", args=[job.pk])))
    assert "cannot be read" in re.search(r'<pre[^>]*id="job-log"[^>]*>(.*?)</pre>', html, re.S).group(1)
    response = member_client.get(reverse("web:job_artifact_download", args=[job.pk, stored["model"].pk]))
    assert response.status_code == 404
