"""Writes of results: metric points (batched), artifacts (hashed, through storage), the final Result,
and predictions for new records with a finished model (their whole state machine).

A worker's writes carry its attempt number and are fenced by the job's lease
(``portal.jobs.services.LEASE``): an attempt that was given up on (paused past the heartbeat timeout,
requeued, maybe finished by a newer attempt) gets ``StaleAttempt`` and nothing is written, so
metric points, artifacts and the result are each stored by the attempt that holds the job.
Predictions run on the same lease machine (``PREDICTION_LEASE``)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mlcore import catalog
from mlcore.records import InvalidRecords, records_parse
from portal.common.errors import ServiceError
from portal.common.lease import LeaseMachine
from portal.common.storage import storage_save_hashed
from portal.config.celery import HANDLER_PREDICT, QUEUE_SHORT, app
from portal.jobs.models import Job
from portal.jobs.services import LEASE as JOB_LEASE
from portal.results import selectors as result_selectors
from portal.results.models import Artifact, MetricPoint, Prediction, Result, artifact_path, prediction_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """One metric value, as produced by a training run (no ORM object crosses into the worker's loop)."""

    split: str
    name: str
    step: int
    epoch: int
    value: float | None
    attempt: int = 1


def metric_points_record(*, job_id: int, points: Iterable[Point], attempt: int | None = None) -> int:
    """Insert many points in one statement. A point for a (split, name, step) already stored, e.g. by
    an attempt that died after it, is overwritten rather than duplicated; the same batch written twice
    (a retry after a dropped connection) stores each point once. With ``attempt``, only while that
    attempt holds the job (else ``StaleAttempt``, nothing written)."""
    # The same (split, name, step) twice in one batch: the later value wins (PostgreSQL refuses to
    # update one row twice in a single ON CONFLICT statement).
    latest = {(p.split, p.name, p.step): p for p in points}
    rows = [
        MetricPoint(
            job_id=job_id, split=p.split, name=p.name, step=p.step, epoch=p.epoch, attempt=p.attempt,
            value=None if p.value is None or not math.isfinite(p.value) else float(p.value),
        )
        for p in latest.values()
    ]
    if not rows:
        return 0
    with JOB_LEASE.fenced(pk=job_id, attempt=attempt):
        MetricPoint.objects.bulk_create(
            rows, batch_size=1000, update_conflicts=True,
            unique_fields=["job", "split", "name", "step"], update_fields=["value", "epoch", "attempt"],
        )
    return len(rows)


def artifact_create(
    *, job_id: int, kind: str, path: Path, name: str | None = None, metadata: dict[str, Any] | None = None,
    replace: bool = False, attempt: int | None = None,
) -> Artifact:
    """Store the local file ``path`` as an artifact of the job (hashed while it is written).

    With ``replace`` the job's earlier artifacts of the same kind are deleted once the new one is
    stored (checkpoints: only the latest is worth keeping). With ``attempt``, the row is saved only
    while that attempt holds the job; a stale attempt's file is deleted again and ``StaleAttempt``
    raised, so a paused worker that comes back never adds a second model or log.
    """
    if kind not in Artifact.Kind.values:
        raise ValueError(f"unknown artifact kind {kind!r}")
    artifact = Artifact(job_id=job_id, kind=kind, metadata=metadata or {})
    with open(path, "rb") as fh:
        stored, sha256, size = storage_save_hashed(path=artifact_path(artifact, name or path.name), file=File(fh))
    artifact.file.name, artifact.sha256, artifact.size_bytes = stored, sha256, size
    try:
        with JOB_LEASE.fenced(pk=job_id, attempt=attempt):
            old = list(Artifact.objects.filter(job_id=job_id, kind=kind)) if replace else []
            artifact.save()
            for previous in old:
                previous.delete()
                transaction.on_commit(lambda name=previous.file.name: default_storage.delete(name))
    except BaseException:
        default_storage.delete(stored)  # no orphan file: the row was not saved
        raise
    return artifact


def artifact_latest(*, job_id: int, kind: str) -> Artifact | None:
    return Artifact.objects.filter(job_id=job_id, kind=kind).order_by("-created_at", "-pk").first()


def artifact_fetch(*, artifact: Artifact, destination: Path) -> Path:
    """Copy an artifact from storage to a local file, checking its hash on the way."""
    digest = hashlib.sha256()
    destination.parent.mkdir(parents=True, exist_ok=True)
    with artifact.file.open("rb") as src, open(destination, "wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != artifact.sha256:
        raise OSError(f"artifact {artifact.pk} ({artifact.file.name}) is corrupt: sha256 mismatch")
    return destination


def result_record(
    *, job_id: int, baseline_metrics: dict, optimized_metrics: dict | None = None,
    compression_report: dict | None = None, environment: dict | None = None, attempt: int | None = None,
    target_kind: str | None = None,
) -> Result:
    """The job's final metrics (one row per job; written again by a retry). With ``attempt``, only
    while that attempt holds the job: a stale attempt never rewrites the result of a newer one.

    ``target_kind`` is the kind the run resolved (the recipe's ``metrics["target_kind"]``: a "binary"
    task whose data has 3 classes ran as multiclass); the result stores it with its primary metric,
    direction and the baseline value (``results.selectors.primary_metric`` reads them). Without it the
    kind is told as ``results.selectors.job_target_kind`` tells it."""
    job = Job.objects.only("id", "task_key", "dataset_id", "config").get(pk=job_id)
    kind, metric, greater = result_selectors.primary_metric_resolve(
        job=job, target_kind=target_kind, report=compression_report)
    value = (baseline_metrics or {}).get(metric) if metric else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        value = None
    with JOB_LEASE.fenced(pk=job_id, attempt=attempt):
        result, _ = Result.objects.update_or_create(
            job_id=job_id,
            defaults={
                "baseline_metrics": baseline_metrics,
                "optimized_metrics": optimized_metrics or {},
                "compression_report": compression_report or {},
                "environment": environment or {},
                "target_kind": kind,
                "primary_metric": metric,
                "greater_is_better": greater,
                "primary_value": value,
            },
        )
    return result


# --- predictions for new records ------------------------------------------------------------------
#
#     queued ──> running ──> succeeded | failed
#     running ──> queued    (worker lost: heartbeat expired and attempts remain)
#
# The shared lease machine (portal.common.lease), as for jobs: each transition is one conditional
# UPDATE, and a duplicate delivery or a worker that was given up on can never overwrite the outcome
# of the delivery that won.

# Up to this many records and bytes a request is answered inline (the API waits for the worker);
# anything larger is stored as a file and predicted asynchronously into a CSV.
PREDICT_INLINE_MAX_RECORDS = 1000
PREDICT_INLINE_MAX_BYTES = 1 << 20
# Soft time limit of one prediction task (the hard one adds HARD_LIMIT_GRACE_S).
PREDICT_TIME_LIMIT_S = 3600
PREDICT_HARD_LIMIT_GRACE_S = 60

PS = Prediction.Status
PREDICTION_TRANSITIONS: dict[str, tuple[str, ...]] = {
    PS.RUNNING: (PS.QUEUED,),
    PS.SUCCEEDED: (PS.RUNNING,),
    PS.FAILED: (PS.QUEUED, PS.RUNNING),
    PS.QUEUED: (PS.RUNNING,),
}


class PredictionTransitionError(ServiceError):
    """A transition the prediction state machine does not allow from the current status."""

    code = "conflict"

    def __init__(self, *, prediction_id: int, current: str, target: str) -> None:
        super().__init__(f"prediction {prediction_id} is {current}; it cannot move to {target}")
        self.current = current


class InvalidRecordsError(ServiceError):
    """Records that cannot be predicted; ``fields`` maps ``records[i]`` (or ``line N``) to the reason."""

    code = "invalid_records"

    def __init__(self, message: str, *, fields: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.fields = fields


def invalid_records_error(*, message: str, problems: list[dict[str, Any]]) -> InvalidRecordsError:
    """The API error for records named by `mlcore.records.InvalidRecords` (or stored in ``error_records``)."""
    fields: dict[str, list[str]] = {}
    for p in problems:
        key = f"records[{p['index']}]" if "index" in p else " ".join(f"{k} {p[k]}" for k in ("line", "row") if k in p)
        fields.setdefault(key or "records", []).append(p["message"] if p.get("id") is None
                                                       else f"id {p['id']!r}: {p['message']}")
    return InvalidRecordsError(message, fields=fields)


PREDICTION_LEASE = LeaseMachine(
    model=Prediction, label="prediction", transitions=PREDICTION_TRANSITIONS,
    error=lambda pk, current, target: PredictionTransitionError(prediction_id=pk, current=current, target=target),
)


def _prediction_transition(*, prediction_id: int, target: str, extra_filter: dict[str, Any] | None = None,
                           **fields: Any) -> Prediction:
    # The attempt check stays in ``extra_filter`` (PredictionTransitionError, as the worker expects).
    return PREDICTION_LEASE.transition(pk=prediction_id, target=target, extra_filter=extra_filter, **fields)


def model_artifact_for_prediction(*, job: Job, variant: str) -> Artifact:
    """The job's newest stored model of ``variant``; ServiceError saying why there is none."""
    if job.status != Job.Status.SUCCEEDED:
        raise ServiceError(f"job {job.pk} is {job.status}; predictions need a job that succeeded",
                           code="job_not_finished")
    # A job holds one or two models; the variant is read in Python (JSON key lookups differ across databases).
    models = Artifact.objects.filter(job=job, kind=Artifact.Kind.MODEL).order_by("-created_at", "-pk")
    wanted = variant == Prediction.Variant.OPTIMIZED
    artifact = next((a for a in models if (a.metadata.get("variant") == "optimized") == wanted), None)
    if artifact is None:
        if variant == Prediction.Variant.OPTIMIZED:
            raise ServiceError(f"job {job.pk} has no optimized model (its profile is {job.profile_key}); "
                               "use model=baseline", field="model")
        raise ServiceError(f"job {job.pk} has no stored model", code="no_model")
    return artifact


def _safe_filename(name: str) -> str:
    """The sender's file name reduced to a plain basename (its suffixes tell the reader the format)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._")[-200:]
    return cleaned if re.search(r"[A-Za-z0-9]", cleaned) else "input.csv"


def prediction_create(
    *, user: AbstractBaseUser, job: Job, variant: str = "baseline", records: list[Any] | None = None,
    file: Any = None, filename: str | None = None, idempotency_key: str | None = None,
) -> Prediction:
    """Ask for predictions of ``records`` (JSON values) or of a data ``file`` with the job's model.

    The caller has loaded ``job`` through ``job_get_for_user``. Record shapes are checked here
    (`InvalidRecordsError` naming each bad one); their values are checked by the worker with the
    model's featurizer. Small batches are kept inline; larger ones and files are stored in storage.
    The worker task is enqueued when the transaction commits.
    """
    if (records is None) == (file is None):
        raise ServiceError("send either records (JSON) or a file, not both", field="records")
    if variant not in Prediction.Variant.values:
        raise ServiceError(f"model must be one of {', '.join(Prediction.Variant.values)}", field="model")
    artifact = model_artifact_for_prediction(job=job, variant=variant)
    prediction = Prediction(uid=uuid.uuid4(), job=job, owner=user, model_artifact=artifact, variant=variant,
                            idempotency_key=idempotency_key)
    if records is not None:
        try:
            records_parse(records, modality=catalog.task_get(job.task_key).modality)
        except InvalidRecords as exc:
            raise invalid_records_error(message=str(exc), problems=exc.problems) from None
        prediction.n_records = len(records)
        encoded = json.dumps(records).encode()
        if len(records) <= PREDICT_INLINE_MAX_RECORDS and len(encoded) <= PREDICT_INLINE_MAX_BYTES:
            prediction.output, prediction.records = Prediction.Output.INLINE, records
        else:
            # A large batch: stored as a JSON list (``input_filename`` stays empty), answered as a CSV.
            prediction.output = Prediction.Output.FILE
            file = ContentFile(encoded)
    else:
        size = getattr(file, "size", None)
        if size is not None and size > settings.LABFORMER_MAX_UPLOAD_BYTES:
            raise ServiceError(f"{size} bytes is over the upload limit of {settings.LABFORMER_MAX_UPLOAD_BYTES} bytes",
                               field="file")
        prediction.output = Prediction.Output.FILE
        prediction.input_filename = _safe_filename(filename or getattr(file, "name", "") or "input.csv")
    if file is not None:
        stored, _, size = storage_save_hashed(
            path=prediction_path(prediction, f"input-{prediction.input_filename or 'records.json'}"), file=file)
        if size == 0:
            default_storage.delete(stored)
            raise ServiceError("the file is empty", field="file")
        prediction.input_file.name = stored
    try:
        with transaction.atomic():
            prediction.save()
            transaction.on_commit(lambda: _prediction_enqueue(prediction=prediction))
    except Exception:
        if prediction.input_file:
            default_storage.delete(prediction.input_file.name)  # nothing half-written
        raise
    return prediction


def _prediction_enqueue(*, prediction: Prediction) -> bool:
    """Hand the prediction id to the broker, on the `short` queue (by handler name). A broker that is
    down loses nothing: the row stays queued and the sweep (`prediction_sweep`) sends it later."""
    try:
        app.send_task(HANDLER_PREDICT, args=[prediction.pk], queue=QUEUE_SHORT,
                      soft_time_limit=PREDICT_TIME_LIMIT_S, time_limit=PREDICT_TIME_LIMIT_S + PREDICT_HARD_LIMIT_GRACE_S)
    except Exception as exc:  # noqa: BLE001 - any broker failure: keep the row, the sweep retries
        log.warning("prediction %s: broker unavailable (%s); the sweep will send it", prediction.pk, exc)
        return False
    Prediction.objects.filter(pk=prediction.pk, status=PS.QUEUED).update(dispatched_at=timezone.now())
    return True


def prediction_start(*, prediction_id: int, worker_hostname: str) -> Prediction:
    """queued → running; exactly one delivery wins, the others get PredictionTransitionError."""
    now = timezone.now()
    return _prediction_transition(prediction_id=prediction_id, target=PS.RUNNING, attempts=F("attempts") + 1,
                                  started_at=now, heartbeat_at=now, worker_hostname=worker_hostname[:255])


def prediction_heartbeat(*, prediction_id: int, attempt: int) -> bool:
    """The worker is alive; False when the prediction is no longer this attempt's to finish."""
    return PREDICTION_LEASE.holds(pk=prediction_id, attempt=attempt).update(heartbeat_at=timezone.now()) == 1


def _finished_inputs(prediction: Prediction) -> None:
    """The inputs are not needed once a prediction finished: the inline copy is cleared by the caller's
    update, the stored file deleted after commit."""
    if prediction.input_file:
        name = prediction.input_file.name
        transaction.on_commit(lambda: default_storage.delete(name))


def prediction_succeed(*, prediction_id: int, attempt: int, n_records: int,
                       predictions: list[dict[str, Any]] | None = None, result_path: Path | None = None) -> Prediction:
    """running → succeeded with the inline ``predictions`` or the CSV at ``result_path`` (stored first;
    removed again if this attempt lost the prediction meanwhile, so no orphan result remains)."""
    fields: dict[str, Any] = {"predictions": predictions, "n_records": n_records}
    stored = None
    if result_path is not None:
        current = Prediction.objects.get(pk=prediction_id)
        with open(result_path, "rb") as fh:
            stored, sha256, size = storage_save_hashed(path=prediction_path(current, "predictions.csv"), file=File(fh))
        fields.update(result_file=stored, result_sha256=sha256, result_size_bytes=size)
    try:
        with transaction.atomic():
            prediction = _prediction_transition(prediction_id=prediction_id, target=PS.SUCCEEDED,
                                                extra_filter={"attempts": attempt}, finished_at=timezone.now(),
                                                records=None, **fields)
            _finished_inputs(prediction)
    except (PredictionTransitionError, Prediction.DoesNotExist):
        if stored:
            default_storage.delete(stored)
        raise
    return prediction


def prediction_fail(*, prediction_id: int, message: str, code: str = "prediction_failed",
                    problems: list[dict[str, Any]] | None = None, attempt: int | None = None,
                    stale: dict[str, Any] | None = None) -> Prediction:
    """→ failed, keeping the reason (and the bad records, named) for the API. ``attempt``: only while that
    attempt holds it; ``stale``: only while its heartbeat is still expired (the sweep)."""
    where = {**(stale or {}), **({"attempts": attempt} if attempt is not None else {})}
    with transaction.atomic():
        prediction = _prediction_transition(
            prediction_id=prediction_id, target=PS.FAILED, extra_filter=where or None, finished_at=timezone.now(),
            records=None, error_code=code[:32], error_message=message, error_records=problems or [],
        )
        _finished_inputs(prediction)
    return prediction


def prediction_requeue_lost(*, prediction_id: int, stale_before: datetime) -> Prediction:
    """running → queued (sent again; attempts remain) or running → failed (none left) for a prediction
    whose heartbeat is older than ``stale_before`` (``LeaseMachine.requeue_lost``)."""
    def exhausted(stale: dict[str, Any]) -> Prediction:
        hostname, max_attempts = Prediction.objects.values_list("worker_hostname", "max_attempts").get(pk=prediction_id)
        return prediction_fail(prediction_id=prediction_id, code="worker_lost", stale=stale, message=(
            f"the worker predicting stopped sending heartbeats (last from {hostname or 'unknown'}) "
            f"and all {max_attempts} attempts are used"))

    outcome, prediction = PREDICTION_LEASE.requeue_lost(pk=prediction_id, stale_before=stale_before,
                                                        exhausted=exhausted)
    if outcome == PS.QUEUED:
        _prediction_enqueue(prediction=prediction)
    return prediction


def prediction_sweep_lost(*, stale_before: datetime) -> dict[str, list[int]]:
    """``prediction_requeue_lost`` for every running prediction whose heartbeat is older than
    ``stale_before``: ``{"requeued": [...], "failed": [...]}`` (``LeaseMachine.sweep_lost``)."""
    return PREDICTION_LEASE.sweep_lost(
        stale_before=stale_before,
        requeue=lambda pk: prediction_requeue_lost(prediction_id=pk, stale_before=stale_before))


def prediction_dispatch_pending(*, min_age: timedelta, resend_after: timedelta,
                                exclude: Iterable[int] = ()) -> list[int]:
    """Send queued predictions whose message never reached the broker or was lost (``LeaseMachine.pending``):
    only one delivery can start a prediction, so a duplicate message is harmless."""
    return PREDICTION_LEASE.dispatch_pending(min_age=min_age, resend_after=resend_after, exclude=list(exclude),
                                             enqueue=lambda prediction: _prediction_enqueue(prediction=prediction))


def prediction_sweep(*, heartbeat_timeout: timedelta, min_age: timedelta, resend_after: timedelta) -> dict[str, list[int]]:
    """Recover predictions a lost worker or a lost broker message left behind.

    Running ones whose heartbeat expired go back to queued (attempts remain) or fail; queued ones never
    sent (the broker was down) or sent longer than ``resend_after`` ago are sent (again).
    """
    moved = prediction_sweep_lost(stale_before=timezone.now() - heartbeat_timeout)
    moved["sent"] = prediction_dispatch_pending(min_age=min_age, resend_after=resend_after, exclude=moved["requeued"])
    return moved
