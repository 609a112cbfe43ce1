"""The job state machine and submission, against the real database (and Redis for the enqueue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from portal.accounts.models import Membership
from portal.common.errors import NotAllowed, ServiceError
from portal.config.celery import HANDLER_RUN_JOB, QUEUE_CPU, QUEUE_GPU
from portal.datasets.models import Dataset
from portal.jobs import services
from portal.jobs.models import Job
from portal.jobs.services import JobTransitionError
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db
S = Job.Status
ROOT = Path(__file__).resolve().parents[3]


def _job_in(status: str, **kw) -> Job:  # noqa: ANN003
    job = JobFactory(**kw)
    Job.objects.filter(pk=job.pk).update(status=status, heartbeat_at=timezone.now())
    job.refresh_from_db()
    return job


def _do(action: str, job: Job) -> Job:
    if action == "start":
        return services.job_start(job_id=job.pk, worker_hostname="w1")
    if action == "succeed":
        return services.job_succeed(job_id=job.pk)
    if action == "fail":
        return services.job_fail(job_id=job.pk, message="boom", traceback="Traceback ...")
    if action == "mark_cancelled":
        return services.job_mark_cancelled(job_id=job.pk)
    if action == "requeue":
        return services.job_requeue_lost(job_id=job.pk, stale_before=timezone.now() + timedelta(seconds=1))
    raise AssertionError(action)


# Every action from every status: the target when legal, None when it must raise and change nothing.
TABLE = {
    "start": {S.QUEUED: S.RUNNING},
    "succeed": {S.RUNNING: S.SUCCEEDED},
    "fail": {S.RUNNING: S.FAILED},
    "mark_cancelled": {S.RUNNING: S.CANCELLED},
    "requeue": {S.RUNNING: S.QUEUED},
}


@pytest.mark.parametrize("action", list(TABLE))
@pytest.mark.parametrize("status", list(S.values))
def test_every_transition_from_every_status(action: str, status: str, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    job = _job_in(status)
    before = Job.objects.filter(pk=job.pk).values().get()
    target = TABLE[action].get(status)
    with django_capture_on_commit_callbacks(execute=False):
        if target is None:
            with pytest.raises(JobTransitionError) as err:
                _do(action, job)
            assert err.value.current == status
            assert status in str(err.value)
            after = Job.objects.filter(pk=job.pk).values().get()
            assert after == before, "an illegal transition changed the row"
        else:
            assert _do(action, job).status == target
            job.refresh_from_db()
            assert job.status == target


def test_start_counts_attempts_and_records_worker() -> None:
    job = _job_in(S.QUEUED)
    started = services.job_start(job_id=job.pk, worker_hostname="gpu-node-3")
    assert (started.attempts, started.worker_hostname) == (1, "gpu-node-3")
    assert started.started_at is not None and started.heartbeat_at is not None


def test_fail_keeps_message_and_traceback() -> None:
    job = _job_in(S.RUNNING)
    failed = services.job_fail(job_id=job.pk, message="CUDA out of memory", traceback="Traceback (most recent call last): ...")
    assert failed.error_message == "CUDA out of memory"
    assert failed.error_traceback.startswith("Traceback")
    assert failed.finished_at is not None


def test_cancel_queued_is_immediate_and_running_is_a_request() -> None:
    queued = _job_in(S.QUEUED)
    assert services.job_cancel(job_id=queued.pk, user=queued.owner).status == S.CANCELLED
    running = _job_in(S.RUNNING)
    asked = services.job_cancel(job_id=running.pk, user=running.owner)
    assert asked.status == S.RUNNING and asked.cancel_requested
    assert services.job_heartbeat(job_id=running.pk, progress=0.5) is True
    assert services.job_mark_cancelled(job_id=running.pk).status == S.CANCELLED


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_cancel_finished_job_is_refused(status: str) -> None:
    job = _job_in(status)
    with pytest.raises(JobTransitionError):
        services.job_cancel(job_id=job.pk, user=job.owner)


def test_cancel_by_someone_else_is_refused_but_lab_owner_may() -> None:
    job = _job_in(S.QUEUED)
    member = MembershipFactory(lab=job.lab, role=Membership.Role.MEMBER).user
    with pytest.raises(NotAllowed):
        services.job_cancel(job_id=job.pk, user=member)
    assert Job.objects.get(pk=job.pk).status == S.QUEUED
    lab_owner = MembershipFactory(lab=job.lab, role=Membership.Role.OWNER).user
    assert services.job_cancel(job_id=job.pk, user=lab_owner).status == S.CANCELLED


def test_heartbeat_records_progress_and_ignores_non_running() -> None:
    job = _job_in(S.RUNNING)
    assert services.job_heartbeat(job_id=job.pk, progress=0.25, epoch=2, step=40) is False
    job.refresh_from_db()
    assert (job.progress, job.epoch, job.step) == (0.25, 2, 40)
    done = _job_in(S.SUCCEEDED)
    # A stale worker heartbeating a finished job is told to stop, and nothing changes.
    assert services.job_heartbeat(job_id=done.pk, progress=0.1) is True
    done.refresh_from_db()
    assert done.progress == 0.0


def test_requeue_lost_job_respects_fresh_heartbeat_and_attempts(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    job = _job_in(S.RUNNING)
    Job.objects.filter(pk=job.pk).update(attempts=1, heartbeat_at=timezone.now())
    # The heartbeat is newer than the cutoff: the worker is alive, the job stays running.
    with pytest.raises(JobTransitionError):
        services.job_requeue_lost(job_id=job.pk, stale_before=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        requeued = services.job_requeue_lost(job_id=job.pk, stale_before=timezone.now() + timedelta(seconds=1))
    assert requeued.status == S.QUEUED and requeued.attempts == 1 and len(callbacks) == 1
    # Out of attempts: the job fails with the reason instead of running forever.
    Job.objects.filter(pk=job.pk).update(status=S.RUNNING, attempts=3, max_attempts=3, heartbeat_at=timezone.now() - timedelta(hours=1))
    failed = services.job_requeue_lost(job_id=job.pk, stale_before=timezone.now())
    assert failed.status == S.FAILED and "attempts" in failed.error_message


def _key(queue: str) -> str:
    return settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "") + queue


def _queued_messages(client: redis.Redis, queue: str) -> list[dict]:
    """Messages waiting in ``queue`` (kombu keeps one Redis list per priority step: ``queue``, ``queue\\x06\\x163``...)."""
    keys = [_key(queue).encode()] + sorted(k for k in client.keys(f"{_key(queue)}\x06\x16*"))
    return [json.loads(raw) for key in keys for raw in client.lrange(key, 0, -1)]


@pytest.fixture
def broker() -> redis.Redis:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def _clear() -> None:
        for queue in (QUEUE_CPU, QUEUE_GPU, "gpu-x2"):
            for key in [_key(queue), *client.keys(f"{_key(queue)}\x06\x16*")]:
                client.delete(key)

    _clear()
    yield client
    _clear()


def _ready_dataset(role: str = Membership.Role.MEMBER) -> Dataset:
    membership = MembershipFactory(role=role)
    return DatasetFactory(owner=membership.user, lab=membership.lab, modality="dna", status=Dataset.Status.READY)


def test_submit_freezes_config_and_enqueues_on_commit(broker: redis.Redis, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs the broker on Redis"
    dataset = _ready_dataset()
    services.worker_seen_record(hostname="gpu@node-1", queues=["gpu", "predict"], gpus=1)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_submit(
            user=dataset.owner, dataset=dataset, task_key="dna-classification", profile_key="int8",
            preset="tiny", hyperparameters={"epochs": 3, "lr": "0.01"}, device="gpu",
        )
        # Nothing reaches the broker before the transaction commits.
        assert _queued_messages(broker, QUEUE_GPU) == []
    assert job.status == S.QUEUED and job.gpu_count == 1
    assert job.config["hyperparameters"]["epochs"] == 3 and job.config["hyperparameters"]["lr"] == 0.01
    assert job.config["dataset"]["sha256"] == dataset.sha256
    gpu_messages = _queued_messages(broker, QUEUE_GPU)
    assert len(gpu_messages) == 1 and _queued_messages(broker, QUEUE_CPU) == []
    message = gpu_messages[0]
    assert message["headers"]["task"] == HANDLER_RUN_JOB
    assert json.loads(__import__("base64").b64decode(message["body"]))[0] == [job.pk]


def test_a_job_asking_for_two_gpus_waits_on_gpu_x2(broker: redis.Redis, django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    dataset = _ready_dataset()
    services.worker_seen_record(hostname="gpu@node-2", queues=["gpu", "gpu-x2"], gpus=2)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  device="gpu", gpu_count=2)
    # only workers owning two or more GPUs consume gpu-x2 (LABFORMER_WORKER_GPUS)
    assert len(_queued_messages(broker, "gpu-x2")) == 1 and _queued_messages(broker, QUEUE_GPU) == []
    assert job.gpu_count == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task_key": "molecule-regression"}, "task"),  # a SMILES task on a DNA dataset
        ({"task_key": "no-such-task"}, "task"),
        ({"profile_key": "turbo"}, "profile"),
        ({"preset": "huge"}, "preset"),
        ({"hyperparameters": {"epochs": 0}}, "hyperparameters"),
        ({"hyperparameters": {"learning_rate": 1}}, "hyperparameters"),
        ({"device": "cpu", "gpu_count": 2}, "gpu_count"),
        ({"split": "alphabetical"}, "split"),
        ({"split": "scaffold"}, "split"),  # a DNA dataset has no molecules
        ({"split": "stratified", "task_key": "dna-regression"}, "split"),
        ({"split": "group"}, "split"),  # the dataset has no group column
        ({"split": "column"}, "split"),  # nor a split column
    ],
)
def test_submit_rejects_what_does_not_fit(kwargs: dict, field: str) -> None:
    dataset = _ready_dataset()
    args = {"task_key": "dna-classification", **kwargs}
    with pytest.raises(ServiceError) as err:
        services.job_submit(user=dataset.owner, dataset=dataset, **args)
    assert err.value.field == field
    assert Job.objects.count() == 0


def test_submit_freezes_the_split_and_clone_keeps_it(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    dataset = _ready_dataset()
    Dataset.objects.filter(pk=dataset.pk).update(schema={**(dataset.schema or {}), "group_col": "family"})
    dataset.refresh_from_db()
    job = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", split="group")
    assert job.config["split"] == "group"
    retried = services.job_clone(user=dataset.owner, job=job)
    assert retried.config["split"] == "group"
    changed = services.job_clone(user=dataset.owner, job=job, changes={"split": "stratified"})
    assert changed.config["split"] == "stratified"
    default = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification")
    assert default.config["split"] == "random"


def test_submit_refuses_unready_dataset_and_viewers() -> None:
    dataset = _ready_dataset()
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.VALIDATING)
    dataset.refresh_from_db()
    with pytest.raises(ServiceError, match="validating"):
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification")
    viewer_ds = _ready_dataset(role=Membership.Role.VIEWER)
    with pytest.raises(NotAllowed):
        services.job_submit(user=viewer_ds.owner, dataset=viewer_ds, task_key="dna-classification")
    assert Job.objects.count() == 0


def test_submit_is_idempotent_per_user(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    dataset = _ready_dataset()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", idempotency_key="k-1")
        again = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", idempotency_key="k-1")
    assert first.pk == again.pk and Job.objects.count() == 1 and len(callbacks) == 1


RACE_SCRIPT = r"""
import os, sys, time
import django
django.setup()
from django.db import connection
from portal.jobs.services import JobTransitionError, job_start
name, ids, start_at = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], float(sys.argv[3])
connection.ensure_connection()
while time.time() < start_at:  # both processes leave this line at the same moment
    pass
won = []
for job_id in ids:
    try:
        job_start(job_id=job_id, worker_hostname=name)
        won.append(job_id)
    except JobTransitionError:
        pass
print(",".join(map(str, won)))
"""


@pytest.mark.django_db(transaction=True)
def test_two_processes_racing_to_start_the_same_jobs_exactly_one_wins_each() -> None:
    assert connection.vendor == "postgresql"
    jobs = [_job_in(S.QUEUED) for _ in range(40)]
    ids = ",".join(str(j.pk) for j in jobs)
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "portal.config.settings"}
    start_at = time.time() + 4
    procs = [
        subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, f"worker-{k}", ids, str(start_at)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for k in (1, 2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    won = [set(int(x) for x in out.strip().split(",") if x) for out, _ in outs]
    assert won[0].isdisjoint(won[1]), "a job was started by both workers"
    assert won[0] | won[1] == {j.pk for j in jobs}, "a job was started by neither"
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.status == S.RUNNING and job.attempts == 1
        assert job.pk in won[0 if job.worker_hostname == "worker-1" else 1]


# --- jobs that cannot succeed are refused at submission, with the fix named ------------------------

def _csv_dataset(content: bytes, *, modality: str = "dna", schema: dict | None = None, report: dict | None = None
                 ) -> Dataset:
    from django.core.files.base import ContentFile

    membership = MembershipFactory()
    return DatasetFactory(owner=membership.user, lab=membership.lab, modality=modality, status=Dataset.Status.READY,
                          original_file=ContentFile(content, name="data.csv"), original_filename="data.csv",
                          schema=schema or {}, validation_report=report or {})


def test_submit_refuses_a_dataset_without_the_target_column_and_says_how_to_pick_one() -> None:
    dataset = _csv_dataset(b"sequence,activity\nACGT,1\nTTGA,0\n",
                           report={"columns": {"input": "sequence", "targets": [], "file": ["sequence", "activity"]}})
    with pytest.raises(ServiceError) as refused:
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification")
    assert refused.value.field == "target_col" and refused.value.code == "no_target_column"
    message = refused.value.message
    assert "no column 'label'" in message and "--target-col" in message and "activity" in message
    assert not Job.objects.exists()
    # Picking the column the message names makes the job, and the worker is told which column it is.
    job = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification",
                              target_col="activity")
    assert job.config["target_cols"] == ["activity"]
    # A column the file does not have is refused the same way.
    with pytest.raises(ServiceError, match="no column 'activty'"):
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", target_col="activty")


def test_submit_takes_several_target_columns_only_for_kinds_that_predict_several() -> None:
    rows = "".join(f"{i % 7},{(i * 3) % 5},{i % 2},{(i // 2) % 2},{(i // 3) % 2}\n" for i in range(40))
    dataset = _csv_dataset(f"x1,x2,y1,y2,y3\n{rows}".encode(), modality="tabular")
    # A multi-label task takes the label panel as one comma-separated choice, spaces allowed.
    job = services.job_submit(user=dataset.owner, dataset=dataset, task_key="tabular-multilabel",
                              target_col="y1, y2,y3")
    assert job.config["target_cols"] == ["y1", "y2", "y3"]
    # A clone keeps the panel.
    assert services.job_clone(user=dataset.owner, job=job).config["target_cols"] == ["y1", "y2", "y3"]
    # A kind predicting one column refuses several, saying which kinds take them.
    with pytest.raises(ServiceError) as refused:
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="tabular-classification", target_col="y1,y2")
    assert refused.value.field == "target_col" and refused.value.code == "too_many_targets"
    assert "y1, y2" in refused.value.message and "multi-label" in refused.value.message
    # One missing column among several is named.
    with pytest.raises(ServiceError, match="no column 'y4'"):
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="tabular-multilabel", target_col="y1,y4")


def test_submit_refuses_classification_on_a_continuous_target_and_names_the_regression_task() -> None:
    rows = "\n".join(f"ACGTACGT,{i * 0.137:.3f}" for i in range(300))
    dataset = _csv_dataset(f"sequence,label\n{rows}\n".encode())
    with pytest.raises(ServiceError) as refused:
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification")
    assert refused.value.code == "continuous_target" and refused.value.field == "task"
    assert "use the regression task (dna-regression) with target column 'label'" in refused.value.message
    assert not Job.objects.exists()
    regression = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-regression",
                                     target_col="label")
    assert regression.status == S.QUEUED and regression.config["target_cols"] == ["label"]
    # a handful of integer classes is classification as usual
    classes = _csv_dataset(b"sequence,label\n" + b"".join(b"ACGT,%d\n" % (i % 3) for i in range(60)))
    assert services.job_submit(user=classes.owner, dataset=classes, task_key="dna-classification").pk


def test_a_gpu_job_is_refused_until_a_gpu_worker_has_registered() -> None:
    dataset = _ready_dataset()
    services.worker_seen_record(hostname="cpu@node-1", queues=["cpu", "predict"], gpus=0)
    with pytest.raises(ServiceError) as refused:
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu")
    assert refused.value.field == "device" and "no GPU worker is registered" in refused.value.message
    assert "device cpu" in refused.value.message
    services.worker_seen_record(hostname="gpu@node-1", queues=["gpu", "predict"], gpus=1)
    with pytest.raises(ServiceError, match="no worker with 2 GPUs is registered"):
        services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu",
                            gpu_count=2)
    job = services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", device="gpu")
    assert (job.device, job.gpu_count) == ("gpu", 1)


def test_sweep_lost_requeues_fails_exhausted_and_leaves_live_jobs(django_capture_on_commit_callbacks) -> None:  # noqa: ANN001
    long_ago = timezone.now() - timedelta(hours=1)
    lost, exhausted, alive = _job_in(S.RUNNING), _job_in(S.RUNNING), _job_in(S.RUNNING)
    Job.objects.filter(pk=lost.pk).update(attempts=1, heartbeat_at=long_ago)
    Job.objects.filter(pk=exhausted.pk).update(attempts=3, max_attempts=3, heartbeat_at=long_ago)
    Job.objects.filter(pk=alive.pk).update(attempts=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        moved = services.job_sweep_lost(stale_before=timezone.now() - timedelta(minutes=5))
    assert moved == {"requeued": [lost.pk], "failed": [exhausted.pk]}
    assert len(callbacks) == 1  # the requeued job is sent again on commit
    assert dict(Job.objects.values_list("pk", "status")) == {lost.pk: S.QUEUED, exhausted.pk: S.FAILED,
                                                             alive.pk: S.RUNNING}
