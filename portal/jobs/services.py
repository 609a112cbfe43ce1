"""Writes of jobs: submission, and every status transition of the state machine.

    queued ──> running ──> succeeded | failed | cancelled
    queued ──> cancelled
    running ──> queued          (worker lost: heartbeat expired and attempts remain)

The machine is the shared lease machine (``portal.common.lease``), as for predictions. Each transition
is ONE conditional UPDATE (``... WHERE id = %s AND status IN (...)``): when two workers race for the
same job, the database lets exactly one UPDATE match; the loser gets a ``JobTransitionError`` and
changes nothing. A worker's writes (heartbeat, end of the job) carry its attempt number: an attempt
whose lease was given to a newer one gets ``StaleAttempt`` and stops. No other module writes
``Job.status``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat, Right
from django.utils import timezone

from mlcore import catalog
from mlcore.columns import ColumnMapping
from portal.accounts.models import Lab, Membership, Visibility
from portal.accounts.selectors import membership_get
from portal.common.catalog_keys import catalog_key_check
from portal.common.errors import NotAllowed, ServiceError
from portal.common.lease import LeaseMachine, StaleAttempt
from portal.config.celery import HANDLER_RUN_JOB, app, job_queue
from portal.datasets.models import Dataset
from portal.datasets.selectors import dataset_preview
from portal.jobs.models import Job, JobLog, WorkerSeen

S = Job.Status
log = logging.getLogger(__name__)

__all__ = ["StaleAttempt"]  # re-exported: the worker catches it from here

# The whole state machine: target status -> the statuses it may be entered from.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.RUNNING: (S.QUEUED,),
    S.SUCCEEDED: (S.RUNNING,),
    S.FAILED: (S.RUNNING,),
    S.CANCELLED: (S.QUEUED, S.RUNNING),
    S.QUEUED: (S.RUNNING,),
}


class JobTransitionError(ServiceError):
    """A transition the state machine does not allow from the job's current status."""

    code = "conflict"

    def __init__(self, *, job_id: int, current: str, target: str) -> None:
        super().__init__(f"job {job_id} is {current}; it cannot move to {target}")
        self.job_id = job_id
        self.current = current
        self.target = target


LEASE = LeaseMachine(
    model=Job, label="job", transitions=TRANSITIONS, touch="updated_at", requeue_fields={"worker_hostname": ""},
    error=lambda pk, current, target: JobTransitionError(job_id=pk, current=current, target=target),
)


def _transition(*, job_id: int, target: str, allowed_from: tuple[str, ...] | None = None,
                extra_filter: dict[str, Any] | None = None, attempt: int | None = None, **fields: Any) -> Job:
    return LEASE.transition(pk=job_id, target=target, allowed_from=allowed_from, attempt=attempt,
                            extra_filter=extra_filter, **fields)


# --- submission -------------------------------------------------------------------------------

def _broker_priority(priority: int) -> int:
    """Map a job priority (higher runs first, -4..4 useful) to the broker's 0..9 scale.

    Redis (kombu) treats 0 as the most urgent, AMQP treats 9 as the most urgent.
    """
    urgency = max(0, min(9, 5 + priority))
    broker_url = str(app.conf.broker_url or "")
    return 9 - urgency if broker_url.startswith(("redis://", "rediss://")) else urgency


# Seconds between the soft time limit (the job fails cleanly) and the hard one (the process is killed).
HARD_LIMIT_GRACE_S = 60


def _job_enqueue(*, job: Job) -> bool:
    """Hand the job id to the broker, on the queue its device asks for (by handler name).

    A broker that is down does not lose the job: it stays queued with ``dispatched_at`` NULL and the
    periodic dispatch sweep (``job_dispatch_pending``) sends it once the broker is back.
    """
    try:
        app.send_task(
            HANDLER_RUN_JOB,
            args=[job.pk],
            queue=job_queue(job.device, job.gpu_count),
            priority=_broker_priority(job.priority),
            soft_time_limit=job.time_limit_s,
            time_limit=job.time_limit_s + HARD_LIMIT_GRACE_S,
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure: keep the job, retry later
        log.warning("job %s: broker unavailable (%s); the dispatch sweep will send it", job.pk, exc)
        return False
    Job.objects.filter(pk=job.pk, status=S.QUEUED).update(dispatched_at=timezone.now())
    return True


def job_dispatch_pending(*, min_age: timedelta, resend_after: timedelta, exclude: Iterable[int] = ()) -> list[int]:
    """Send queued jobs whose message never reached the broker or was lost (see ``LeaseMachine.pending``)."""
    return LEASE.dispatch_pending(min_age=min_age, resend_after=resend_after, order_by=("-priority", "created_at"),
                                  exclude=list(exclude), enqueue=lambda job: _job_enqueue(job=job))


def _writable_lab(*, user: AbstractBaseUser, dataset: Dataset, lab: Lab | None) -> Lab:
    if lab is not None:
        membership = membership_get(user=user, lab=lab)
        if membership is None or not membership.can_write:
            raise NotAllowed(f"you cannot launch jobs in lab '{lab.slug}'", field="lab")
        return lab
    membership = membership_get(user=user, lab=dataset.lab)
    if membership is not None and membership.can_write:
        return dataset.lab
    writable = list(
        Membership.objects.filter(user=user, role__in=[Membership.Role.OWNER, Membership.Role.MEMBER])
        .select_related("lab")[:2]
    )
    if len(writable) == 1:
        return writable[0].lab
    if not writable:
        raise NotAllowed("you are not a member (or owner) of any lab, so you cannot launch jobs", field="lab")
    raise ServiceError("you belong to several labs: say which lab the job belongs to", field="lab")


def _split_check(*, split: str, dataset: Dataset, task: catalog.Task) -> None:
    """A split method the dataset and task can use, or a ServiceError on the `split` field."""
    if split not in catalog.SPLIT_METHODS:
        raise ServiceError(f"unknown split {split!r}; expected one of {', '.join(catalog.SPLIT_METHODS)}",
                           field="split")
    schema = dataset.schema or {}
    if split == "stratified" and not task.is_classification:
        raise ServiceError(f"a stratified split needs a classification task; {task.key} is {task.target_kind}",
                           field="split")
    if split == "scaffold" and dataset.modality != "smiles":
        raise ServiceError(f"a scaffold split needs molecules; {dataset.name} is {dataset.modality}", field="split")
    if split == "group" and not schema.get("group_col"):
        raise ServiceError(f"a group split needs a group column; {dataset.name} v{dataset.version} has none",
                           field="split")
    if split == "column" and not schema.get("split_col"):
        raise ServiceError(f"a column split needs a split column; {dataset.name} v{dataset.version} has none",
                           field="split")


# How many records of the dataset the submission checks look at (the first ones; a bounded read).
TARGET_SAMPLE_ROWS = 2000
# A classification target with more distinct values than this in the sample is a measurement, not classes.
MAX_CLASSES_SAMPLED = 100


def _find_column(name: str, columns: list[str]) -> str | None:
    """``name`` among ``columns``, or its one case-insensitive match (as validation resolves columns)."""
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _continuous_reason(values: list[Any]) -> str | None:
    """Why these target values look like a continuous measurement rather than classes, or None."""
    present = [v for v in values if v not in (None, "")]
    numbers = [_number(v) for v in present]
    if not present or any(n is None for n in numbers):
        return None  # labels that are words are classes
    distinct = {n for n in numbers if n is not None}
    fractional = [n for n in distinct if n == n and not float(n).is_integer()]
    if fractional and len(distinct) > 2:
        return (f"{len(distinct)} distinct numbers in its first {len(present)} records, fractional ones among them "
                f"(e.g. {', '.join(f'{n:g}' for n in sorted(fractional)[:3])})")
    if len(distinct) > MAX_CLASSES_SAMPLED:
        return f"{len(distinct)} distinct numbers in its first {len(present)} records"
    return None


def _target_check(*, dataset: Dataset, task: catalog.Task, target_col: str | None) -> list[str] | None:
    """The target column(s) the job trains on, checked against what training will read; a ServiceError
    that says how to fix it when the job could not succeed.

    Returns None when the dataset's own mapping applies (nothing to override), else the column(s).
    """
    label = f"{dataset.name} v{dataset.version}"
    report_columns = (dataset.validation_report or {}).get("columns") or {}
    mapped: list[str] = []
    for stored in (report_columns, dataset.schema):  # as validation resolved the mapping, else as uploaded
        with contextlib.suppress(ValueError):  # a mapping stored before they were checked: the worker says why
            mapped = mapped or list(ColumnMapping.from_dict(stored).target_cols)
    chosen = [c.strip() for c in (target_col or "").split(",") if c.strip()]
    target_col = ",".join(chosen) or None
    if len(chosen) > 1 and not task.kind.several_targets:
        raise ServiceError(
            f"{task.label} ({task.kind.label.lower()}) predicts one target column, got {len(chosen)}: "
            f"{', '.join(chosen)}. Pick one, or a task whose kind takes several (e.g. multi-target regression "
            "or multi-label classification).", field="target_col", code="too_many_targets")
    wanted = chosen or mapped or [task.default_target_col]
    try:
        sample = dataset_preview(dataset=dataset, rows=TARGET_SAMPLE_ROWS)
    except (OSError, ValueError):
        return list(wanted) if target_col else None  # unreadable here: the worker reports it with its line
    line_col = report_columns.get("line") or "source_line"  # the canonical copy's source-line column
    columns = [c for c in sample["columns"] if c != line_col]
    if sample["source"] == "original" and columns == ["line"]:
        return list(wanted) if target_col else None  # FASTA / SDF: columns are known only after reading records
    founds = [_find_column(w, columns) for w in wanted]
    missing = next((w for w, f in zip(wanted, founds) if f is None), None)
    found = founds[0]
    if missing is not None:
        in_file = list(report_columns.get("file") or [])
        readable = [c for c in columns if c not in (report_columns.get("input"), report_columns.get("id"))]
        fix = (f"Pick the target column (one of: {', '.join(readable)}) in the launch form's Target column, with "
               "`labformer submit --target-col COLUMN` or the API's target_col") if readable else ""
        unmapped = [c for c in in_file if c not in columns]
        if unmapped:
            remap = (f"make the file's column the target by editing the dataset's mapping (its page's Edit the "
                     f"mapping, or `labformer dataset remap {dataset.pk} --target-col COLUMN`): that makes a new "
                     f"version validated with it (columns in the file but not validated: {', '.join(unmapped)})")
            fix = f"{fix}; or {remap}" if fix else remap[0].upper() + remap[1:]
        which = "the chosen target column" if target_col else f"the target column {task.label} reads by default"
        raise ServiceError(
            f"dataset {label} has no column {missing!r}, {which} (columns training reads: "
            f"{', '.join(columns) or 'none'}). {fix or 'Upload the file again with a target column.'}",
            field="target_col", code="no_target_column",
        )
    if task.is_classification and len(founds) == 1:
        at = sample["columns"].index(found)
        reason = _continuous_reason([row[at] for row in sample["rows"] if at < len(row)])
        if reason:
            regression = [t for t in catalog.TASKS.values() if t.modality == task.modality and t.is_regression]
            use = "use a regression task"
            if regression:
                pick = "" if regression[0].default_target_col == found else f" with target column {found!r}"
                use = f"use the regression task ({', '.join(t.key for t in regression)}){pick}"
            raise ServiceError(
                f"{task.label} is a classification task, but the target {found!r} of dataset {label} looks "
                f"continuous: {reason}. Classification needs a few classes; {use}, or pick another target column.",
                field="task", code="continuous_target",
            )
    if target_col:
        return list(founds)
    return None


def _gpu_check(*, gpu_count: int) -> None:
    """A GPU job is refused when no worker owning that many GPUs has ever started: it would wait forever."""
    largest = WorkerSeen.objects.filter(gpus__gte=1).order_by("-gpus").values_list("gpus", flat=True).first()
    if largest is None:
        without = list(WorkerSeen.objects.filter(queues__contains=["gpu"]).values_list("hostname", flat=True)[:3])
        why = (f"the workers serving the gpu queue ({', '.join(without)}) have no GPU" if without
               else "no worker serving the gpu queue has ever started here")
        raise ServiceError(
            f"no GPU worker is registered: {why}, so the job could never run. Run it on the CPU (device cpu), "
            "or start a GPU worker first (`celery -A workers worker -Q gpu` on a machine with a GPU).",
            field="device", code="no_gpu_worker",
        )
    if gpu_count > largest:
        raise ServiceError(
            f"no worker with {gpu_count} GPUs is registered (the largest has {largest}): ask for at most "
            f"{largest}, or start a worker owning {gpu_count} GPUs (LABFORMER_WORKER_GPUS={gpu_count})",
            field="gpu_count", code="no_gpu_worker",
        )


def job_config_resolve(
    *, dataset: Dataset, task_key: str, profile_key: str, preset: str, hyperparameters: dict[str, Any],
    split: str = "random", target_col: str | None = None,
) -> dict[str, Any]:
    """Check the task fits the dataset and freeze everything the worker needs into one dict."""
    # Catalog keys are checked here, against the catalog as it is now (no model field freezes them).
    catalog_key_check(what="task", key=task_key, valid=catalog.TASKS, field="task")
    task = catalog.TASKS[task_key]
    if task.modality != dataset.modality:
        raise ServiceError(
            f"task {task_key} needs a {task.modality} dataset; {dataset.name} v{dataset.version} is {dataset.modality}",
            field="task",
        )
    catalog_key_check(what="profile", key=profile_key, valid=catalog.PROFILES, field="profile")
    if preset not in catalog.PRESETS:
        raise ServiceError(f"unknown preset {preset!r}; expected one of {', '.join(catalog.PRESETS)}", field="preset")
    try:
        hp = catalog.hyperparameters_validate(hyperparameters or {}, preset=preset)
    except ValueError as exc:
        raise ServiceError(str(exc), field="hyperparameters") from exc
    _split_check(split=split, dataset=dataset, task=task)
    target_cols = _target_check(dataset=dataset, task=task, target_col=target_col)
    return {
        "task": task_key,
        "split": split,
        # The column(s) to predict when the job picks them; None: the dataset's mapping (or the task's default).
        "target_cols": target_cols,
        "modality": task.modality,
        "target_kind": task.target_kind,
        "profile": profile_key,
        "preset": preset,
        "hyperparameters": hp,
        "dataset": {
            "id": dataset.pk,
            "name": dataset.name,
            "version": dataset.version,
            "sha256": dataset.sha256,
            "schema": dataset.schema,
        },
    }


def job_submit(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    task_key: str,
    profile_key: str = "baseline",
    preset: str = "tiny",
    hyperparameters: dict[str, Any] | None = None,
    device: str = Job.Device.CPU,
    gpu_count: int | None = None,
    priority: int = 0,
    visibility: str = Visibility.LAB,
    name: str = "",
    lab: Lab | None = None,
    idempotency_key: str | None = None,
    max_attempts: int = 3,
    time_limit_s: int | None = None,
    budget: float | None = None,
    split: str = "random",
    target_col: str | None = None,
    options: dict[str, Any] | None = None,
) -> Job:
    """Create a queued job and, once the transaction commits, enqueue it.

    ``options`` are the profile's options (``mlcore.catalog.ProfileOption``: strings or JSON values),
    checked by ``catalog.profile_options_resolve`` and stored typed and complete on ``Job.options``;
    ``budget`` is the ``budget`` option (kept as its own argument; it wins over ``options["budget"]``).
    A bad option is a ServiceError whose field is ``options.<name>`` (``budget`` for the argument).

    A job that could not succeed is refused here, with how to fix it: a target column the dataset
    lacks, classification on a continuous target, a GPU no registered worker has.

    ``dataset`` must already have been loaded through ``dataset_get_for_user``. With an
    ``idempotency_key`` a repeated call by the same user returns the first job.
    """
    if idempotency_key:
        existing = Job.objects.filter(owner=user, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
    if dataset.status != Dataset.Status.READY:
        raise ServiceError(
            f"dataset {dataset.name} v{dataset.version} is {dataset.status}; only a ready dataset can be trained on",
            field="dataset",
        )
    if device not in Job.Device.values:
        raise ServiceError(f"device {device!r}: expected cpu or gpu", field="device")
    if gpu_count is None:
        gpu_count = 1 if device == Job.Device.GPU else 0
    if device == Job.Device.CPU and gpu_count != 0:
        raise ServiceError("a CPU job cannot ask for GPUs", field="gpu_count")
    if device == Job.Device.GPU and not 1 <= gpu_count <= 8:
        raise ServiceError("a GPU job asks for 1 to 8 GPUs", field="gpu_count")
    if visibility not in Visibility.values:
        raise ServiceError(f"unknown visibility {visibility!r}", field="visibility")
    if not 1 <= max_attempts <= 10:
        raise ServiceError("max_attempts must be between 1 and 10", field="max_attempts")
    if budget is not None and not 0.0 <= float(budget) <= 1.0:
        raise ServiceError("the accuracy budget is an absolute metric drop between 0 and 1", field="budget")
    if time_limit_s is None:
        time_limit_s = settings.LABFORMER_JOB_TIME_LIMIT
    if not 1 <= time_limit_s <= 30 * 24 * 3600:
        raise ServiceError("time_limit_s must be between 1 second and 30 days", field="time_limit_s")
    job_lab = _writable_lab(user=user, dataset=dataset, lab=lab)
    config = job_config_resolve(
        dataset=dataset, task_key=task_key, profile_key=profile_key, preset=preset,
        hyperparameters=hyperparameters or {}, split=split, target_col=target_col,
    )
    resolved_options = _profile_options(profile_key=profile_key, options=options, budget=budget)
    if device == Job.Device.GPU:
        _gpu_check(gpu_count=gpu_count)
    config["device"] = {"kind": device, "gpu_count": gpu_count}
    config["overrides"] = dict(hyperparameters or {})  # what the user asked for, for clone and retry
    # pruned / slim / compact stop before the validation metric falls more than this below the baseline
    # (the profile's `budget` option, also in Job.options; kept here for the pages that read it)
    config["budget"] = resolved_options.get("budget")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                owner=user, lab=job_lab, visibility=visibility, dataset=dataset, name=name,
                task_key=task_key, profile_key=profile_key, config=config, options=resolved_options, device=device,
                gpu_count=gpu_count, priority=priority, max_attempts=max_attempts,
                idempotency_key=idempotency_key or None, time_limit_s=time_limit_s,
            )
            transaction.on_commit(lambda: _job_enqueue(job=job))
    except IntegrityError:
        # The same idempotency key raced with itself: the first one won; return it.
        if idempotency_key:
            existing = Job.objects.filter(owner=user, idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        raise
    return job


def _profile_options(*, profile_key: str, options: Any, budget: float | None) -> dict[str, Any]:
    """The profile's options typed and complete, or a ServiceError naming the option (``options.<name>``)."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ServiceError("options must be an object of option names and values", field="options")
    raw = dict(options)
    if budget is not None:
        raw["budget"] = float(budget)
    try:
        return catalog.profile_options_resolve(profile_key, raw)
    except catalog.ProfileOptionError as exc:
        if exc.option is None:
            field = "profile"
        elif exc.option == "budget" and budget is not None:
            field = "budget"
        else:
            field = f"options.{exc.option}"
        raise ServiceError(str(exc), field=field) from None


# --- transitions driven by workers ---------------------------------------------------------

def job_start(*, job_id: int, worker_hostname: str) -> Job:
    """queued → running. Exactly one of several racing workers wins; the others get JobTransitionError."""
    now = timezone.now()
    return _transition(
        job_id=job_id, target=S.RUNNING, attempts=F("attempts") + 1, started_at=now,
        heartbeat_at=now, worker_hostname=worker_hostname[:255], cancel_requested=False,
    )


def job_heartbeat(
    *, job_id: int, attempt: int | None = None, progress: float | None = None, epoch: int | None = None,
    step: int | None = None,
) -> bool:
    """Record that the worker is alive (and how far it got). Returns True if cancellation was asked.

    With ``attempt`` (what workers pass) the beat is fenced: an attempt whose lease went to a newer one
    (or whose job ended) gets ``StaleAttempt`` and must stop. Without it, a heartbeat for a job that is
    no longer running changes nothing and reports True so the caller stops.
    """
    fields: dict[str, Any] = {}
    if progress is not None:
        fields["progress"] = max(0.0, min(1.0, float(progress)))
    if epoch is not None:
        fields["epoch"] = epoch
    if step is not None:
        fields["step"] = step
    if attempt is not None:
        LEASE.heartbeat(pk=job_id, attempt=attempt, **fields)
    elif Job.objects.filter(pk=job_id, status=S.RUNNING).update(heartbeat_at=timezone.now(), **fields) != 1:
        return True
    return bool(Job.objects.filter(pk=job_id).values_list("cancel_requested", flat=True).first())


def job_phase_set(*, job_id: int, phase: str, index: int, count: int, attempt: int | None = None) -> bool:
    """Record the phase a running job's recipe entered (`index` of `count`). False if it is not running
    (or, given ``attempt``, no longer run by that attempt: a stale attempt does not overwrite the phase)."""
    fence = {} if attempt is None else {"attempts": attempt}
    return Job.objects.filter(pk=job_id, status=S.RUNNING, **fence).update(
        phase=phase[:32], phase_index=max(0, index), phase_count=max(0, count)) == 1


def job_log_append(*, job_id: int, attempt: int, text: str) -> None:
    """Append `text` to the log of the job's attempt `attempt`, keeping its last `JobLog.MAX_CHARS`.

    One writer per attempt (its worker), so create-then-update needs no lock; the append itself is one
    UPDATE, so a reader never sees half of it.
    """
    if not text:
        return
    JobLog.objects.get_or_create(job_id=job_id, attempt=attempt)
    JobLog.objects.filter(job_id=job_id, attempt=attempt).update(
        text=Right(Concat(F("text"), Value(text), output_field=TextField()), JobLog.MAX_CHARS),
        chars_total=F("chars_total") + len(text), updated_at=timezone.now(),
    )


def job_succeed(*, job_id: int, attempt: int | None = None) -> Job:
    """running → succeeded; or running → cancelled when a cancel was asked meanwhile.

    A cancel that arrives after the last training step (while the results are stored) is honoured,
    not silently dropped: the API answered ``cancel_requested: true`` and the user must be able to
    rely on it. The job ends ``cancelled``; whatever it stored so far stays attached to it and
    reachable (its page, artifacts and metrics), but it does not count as a succeeded job (no
    predictions, not in the catalog). The check is part of the UPDATE, so there is no window.
    """
    try:
        return _transition(job_id=job_id, target=S.SUCCEEDED, attempt=attempt, extra_filter={"cancel_requested": False},
                           progress=1.0, finished_at=timezone.now())
    except JobTransitionError as exc:
        if exc.current != S.RUNNING:
            raise
    return job_mark_cancelled(job_id=job_id, attempt=attempt)


def job_fail(*, job_id: int, message: str, traceback: str = "", attempt: int | None = None) -> Job:
    """running → failed, keeping the error message and traceback (fenced by ``attempt`` when given)."""
    return _transition(
        job_id=job_id, target=S.FAILED, attempt=attempt, error_message=message[:10000], error_traceback=traceback,
        finished_at=timezone.now(),
    )


def job_mark_cancelled(*, job_id: int, attempt: int | None = None) -> Job:
    """running → cancelled: the worker acknowledges a cancellation request it has acted on."""
    return _transition(job_id=job_id, target=S.CANCELLED, allowed_from=(S.RUNNING,), attempt=attempt,
                       finished_at=timezone.now())


def job_cancel(*, job_id: int, user: AbstractBaseUser) -> Job:
    """Cancel on behalf of ``user``: a queued job becomes cancelled at once; a running one is asked to stop
    (and ends ``cancelled`` even if the request arrives after its last training step: see job_succeed).

    The caller loads the job through ``job_get_for_user`` first; here we check the user may change
    it (its owner, or an owner of its lab).
    """
    job = Job.objects.select_related("lab").get(pk=job_id)
    membership = membership_get(user=user, lab=job.lab)
    if job.owner_id != user.pk and not (membership and membership.role == Membership.Role.OWNER):
        raise NotAllowed("only the job's owner or an owner of its lab can cancel it")
    try:
        return _transition(
            job_id=job_id, target=S.CANCELLED, allowed_from=(S.QUEUED,), finished_at=timezone.now()
        )
    except JobTransitionError as exc:
        if exc.current != S.RUNNING:
            raise
    # Running: the worker checks this flag between steps and calls job_mark_cancelled.
    if Job.objects.filter(pk=job_id, status=S.RUNNING).update(cancel_requested=True, updated_at=timezone.now()) != 1:
        current = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        raise JobTransitionError(job_id=job_id, current=current or "missing", target=S.CANCELLED)
    return Job.objects.get(pk=job_id)


def job_requeue_lost(*, job_id: int, stale_before: datetime) -> Job:
    """running → queued (attempts remain) or running → failed (none left) for a job whose heartbeat expired.

    The heartbeat condition is part of the UPDATE, so a worker that beats at the last moment keeps its job;
    once requeued, the lost attempt's writes are refused (``StaleAttempt``).
    """
    hostname = Job.objects.values_list("worker_hostname", flat=True).get(pk=job_id)

    def exhausted(stale: dict[str, Any]) -> Job:
        job = Job.objects.get(pk=job_id)
        return _transition(
            job_id=job_id, target=S.FAILED, extra_filter=stale, finished_at=timezone.now(),
            error_message=(
                f"the worker running this job stopped sending heartbeats (last from {hostname or 'unknown'}) "
                f"and all {job.max_attempts} attempts are used"
            ),
        )

    outcome, job = LEASE.requeue_lost(pk=job_id, stale_before=stale_before, exhausted=exhausted)
    if outcome == S.QUEUED:
        transaction.on_commit(lambda: _job_enqueue(job=job))
    return job


def job_sweep_lost(*, stale_before: datetime) -> dict[str, list[int]]:
    """``job_requeue_lost`` for every running job whose heartbeat is older than ``stale_before``:
    ``{"requeued": [...], "failed": [...]}`` (``LeaseMachine.sweep_lost``)."""
    return LEASE.sweep_lost(stale_before=stale_before,
                            requeue=lambda pk: job_requeue_lost(job_id=pk, stale_before=stale_before))


def job_clone(
    *, user: AbstractBaseUser, job: Job, changes: dict[str, Any] | None = None, idempotency_key: str | None = None
) -> Job:
    """A new job with ``job``'s settings and ``changes`` applied (any of job_submit's arguments;
    ``hyperparameters`` are merged over the original overrides). ``retry`` is a clone with no changes.

    ``job`` was loaded through ``job_get_for_user``; the dataset is the exact version the job used.
    """
    changes = dict(changes or {})
    allowed = {"task_key", "profile_key", "preset", "hyperparameters", "device", "gpu_count", "priority",
               "visibility", "name", "time_limit_s", "max_attempts", "budget", "split", "target_col", "options"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ServiceError(f"cannot change {', '.join(unknown)}; changeable: {', '.join(sorted(allowed))}",
                           field=unknown[0])
    hyper = dict(job.config.get("overrides", {}))
    hyper.update(changes.pop("hyperparameters", None) or {})
    params: dict[str, Any] = {
        "task_key": job.task_key, "profile_key": job.profile_key, "preset": job.config.get("preset", "tiny"),
        "device": job.device, "gpu_count": job.gpu_count, "priority": job.priority, "visibility": job.visibility,
        "name": job.name, "time_limit_s": job.time_limit_s, "max_attempts": job.max_attempts,
        "budget": job.config.get("budget"), "split": job.config.get("split", "random"),
        "target_col": ",".join(job.config.get("target_cols") or []) or None,
    }
    # The job's options go along where the (possibly new) profile has them; changed ones are merged over.
    profile = catalog.PROFILES.get(changes.get("profile_key", job.profile_key))
    declared = {o.name for o in profile.options} if profile else set()
    options = {k: v for k, v in (job.options or {}).items() if k in declared and v is not None}
    if "budget" not in declared:
        params["budget"] = None
    elif params["budget"] is not None:
        options.setdefault("budget", params["budget"])
    options.update(changes.pop("options", None) or {})
    params["options"] = options
    params.update(changes)
    return job_submit(user=user, dataset=job.dataset, hyperparameters=hyper, idempotency_key=idempotency_key,
                      **params)


# --- workers --------------------------------------------------------------------------------------

def worker_seen_record(*, hostname: str, queues: list[str], gpus: int) -> WorkerSeen:
    """Record that a worker started, serving ``queues`` (``gpus``: the GPUs it owns if it serves ``gpu``).

    Called by each worker when it is ready; the GPU check of ``job_submit`` reads these rows.
    """
    worker, _ = WorkerSeen.objects.update_or_create(
        hostname=hostname[:255],
        defaults={"queues": sorted(set(queues)), "gpus": max(0, int(gpus)), "last_seen_at": timezone.now()},
    )
    return worker
