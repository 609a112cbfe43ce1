"""Reads of results. Callers load the job through ``job_get_for_user`` first."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from mlcore import catalog
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from portal.jobs.selectors import job_list_for_user
from portal.results.models import Artifact, MetricPoint, Prediction, Result


# --- the primary metric: how a job is judged --------------------------------------------------------
#
# One place for every page, the API and the dashboards. A finished job's result stores the target
# kind it ran as (a "binary" task whose data has 3 classes runs as multiclass) and that kind's primary
# metric (results_services.result_record); before that, the kind is told from the task and the number
# of classes its dataset's validation found.


@dataclass(frozen=True)
class PrimaryMetric:
    """A job's primary metric: its name (``key``, "" when unknown), the baseline and optimized models'
    test values of it (None before a result, or when not measured), its direction and the kind."""

    key: str
    value: float | None
    greater_is_better: bool
    target_kind: str
    optimized: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "optimized": self.optimized,
                "greater_is_better": self.greater_is_better, "target_kind": self.target_kind}


def kind_primary_metric(kind: str) -> tuple[str, bool]:
    """(primary metric, greater is better) of a target kind, from the catalog; ("", True) for none."""
    meta = catalog.TARGET_KINDS.get(kind)
    return (meta.primary_metric, meta.greater_is_better) if meta else ("", True)


def _number(value: Any) -> float | None:
    """A finite metric value, or None (missing, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def _job_result(job: Job) -> Result | None:
    try:
        return job.result
    except Result.DoesNotExist:
        return None


def job_target_kind(job: Job, *, report: dict | None = None) -> str:
    """The target kind ``job`` runs as, before its result says so: the task's declared kind (the job's
    frozen config when the task left the catalog); for a classification task, the kind whose primary
    metric its compression ``report`` names, else the kind the number of classes its dataset's
    validation found makes it (catalog.task_target_kind)."""
    task = catalog.TASKS.get(job.task_key)
    if task is None:
        return str((job.config or {}).get("target_kind") or "")
    if not task.is_classification:
        return task.target_kind
    named = (report or {}).get("primary_metric")
    for kind in catalog.CLASSIFICATION_KINDS:
        if named and catalog.TARGET_KINDS[kind].primary_metric == named:
            return kind
    n_classes = (Dataset.objects.filter(pk=job.dataset_id)
                 .values_list("validation_report__stats__target__n_classes", flat=True).first())
    if isinstance(n_classes, int) and not isinstance(n_classes, bool) and n_classes >= 2:
        return catalog.task_target_kind(task, n_classes=n_classes)
    return task.target_kind


def primary_metric_resolve(*, job: Job, target_kind: str | None, report: dict | None) -> tuple[str, str, bool]:
    """(kind, metric, greater is better) a job's result is stored with: ``target_kind`` as the run
    resolved it (else ``job_target_kind``), its primary metric, or the one the compression report
    judged the model by when the report names one."""
    kind = target_kind or job_target_kind(job, report=report)
    metric, greater = kind_primary_metric(kind)
    named = (report or {}).get("primary_metric")
    if isinstance(named, str) and named:
        metric, greater = named, bool((report or {}).get("greater_is_better", greater))
    return kind, metric, greater


def primary_metric(job: Job) -> PrimaryMetric:
    """The metric ``job`` is judged by, with its values: what its result stored when the job finished,
    else the resolved target kind's primary metric (see ``job_target_kind``)."""
    result = _job_result(job)
    if result is not None and result.primary_metric:
        kind, key, greater = result.target_kind, result.primary_metric, result.greater_is_better
    else:
        report = result.compression_report if result is not None and isinstance(result.compression_report, dict) \
            else None
        kind, key, greater = primary_metric_resolve(job=job, target_kind=None, report=report)
    if result is None or not key:
        return PrimaryMetric(key=key, value=None, greater_is_better=greater, target_kind=kind)
    value = result.primary_value if result.primary_metric == key and result.primary_value is not None else \
        _number((result.baseline_metrics or {}).get(key))
    return PrimaryMetric(key=key, value=value, greater_is_better=greater, target_kind=kind,
                         optimized=_number((result.optimized_metrics or {}).get(key)))


def primary_metric_of_row(row: dict[str, Any]) -> PrimaryMetric:
    """``primary_metric`` for a plain row read with ``.values(*PRIMARY_METRIC_ROW_FIELDS)`` (the catalog
    page reads rows, not model instances); a row whose result stored none falls back to the task's kind."""
    key = row.get("result__primary_metric") or ""
    if key:
        kind, greater = row.get("result__target_kind") or "", bool(row.get("result__greater_is_better"))
    else:
        task = catalog.TASKS.get(row.get("task_key") or "")
        kind = task.target_kind if task else ""
        key, greater = kind_primary_metric(kind)
    baseline, optimized = row.get("result__baseline_metrics") or {}, row.get("result__optimized_metrics") or {}
    value = row.get("result__primary_value")
    return PrimaryMetric(key=key, value=_number(value) if value is not None else _number(baseline.get(key)),
                         greater_is_better=greater, target_kind=kind, optimized=_number(optimized.get(key)))


PRIMARY_METRIC_ROW_FIELDS = ("task_key", "result__target_kind", "result__primary_metric", "result__greater_is_better",
                             "result__primary_value", "result__baseline_metrics", "result__optimized_metrics")


def metric_names_for_job(*, job: Job) -> list[dict[str, str]]:
    rows = MetricPoint.objects.filter(job=job).values("split", "name").distinct().order_by("split", "name")
    return list(rows)


def metric_series_for_job(*, job: Job, name: str, split: str | None = None, max_points: int | None = None) -> dict[str, list[dict]]:
    """Points of one metric by split, in step order; with ``max_points`` each split is thinned evenly
    (first and last kept) so a long run's curve stays cheap to draw."""
    qs = MetricPoint.objects.filter(job=job, name=name)
    if split:
        qs = qs.filter(split=split)
    series: dict[str, list[dict]] = {}
    for split_name, step, epoch, value in qs.order_by("split", "step").values_list("split", "step", "epoch", "value"):
        series.setdefault(split_name, []).append({"step": step, "epoch": epoch, "value": value})
    if max_points and max_points > 1:
        for key, points in series.items():
            if len(points) > max_points:
                stride = (len(points) - 1) / (max_points - 1)
                series[key] = [points[round(i * stride)] for i in range(max_points)]
    return series


def artifact_list_for_job(*, job: Job) -> QuerySet[Artifact]:
    return Artifact.objects.filter(job=job).order_by("kind", "-created_at")


def artifact_get_for_job(*, job: Job, artifact_id: int) -> Artifact:
    return Artifact.objects.get(job=job, pk=artifact_id)


def prediction_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Prediction]:
    """The user's own predictions, of jobs they can still see (records sent are private to the sender)."""
    if not user.is_authenticated:
        return Prediction.objects.none()
    return Prediction.objects.filter(owner=user, job__in=job_list_for_user(user=user).values("pk")).select_related(
        "job")


def prediction_get_for_user(*, user: AbstractBaseUser | AnonymousUser, prediction_id: int) -> Prediction:
    """The prediction if ``user`` asked for it and still sees its job; ``Prediction.DoesNotExist`` otherwise."""
    return prediction_list_for_user(user=user).get(pk=prediction_id)


def prediction_wait(*, prediction_id: int, timeout: float) -> Prediction:
    """Poll the row until the worker finished it or ``timeout`` seconds passed; returns it either way.

    The web process has no Celery result backend to wait on (none is configured by default); the
    row the worker fills is the result. Polls start at 20 ms, so a fast prediction is seen fast.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    pause = 0.02
    while True:
        prediction = Prediction.objects.get(pk=prediction_id)
        left = deadline - time.monotonic()
        if prediction.status in (Prediction.Status.SUCCEEDED, Prediction.Status.FAILED) or left <= 0:
            return prediction
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.25)


# What a researcher downloads, by the name the job page, the API (`download_kind`) and
# `labformer download --kind` share: (artifact kind, stored file name or None for any, variant) -> (name, label).
DOWNLOADS: dict[tuple[str, str | None, str | None], tuple[str, str]] = {
    (Artifact.Kind.MODEL, None, None): ("model", "Model"),
    (Artifact.Kind.MODEL, None, "optimized"): ("model-optimized", "Model, optimized"),
    (Artifact.Kind.PREDICTIONS, "predictions.csv", None): ("predictions", "Test predictions (CSV)"),
    (Artifact.Kind.PREDICTIONS, "evaluation.npz", None): ("evaluation", "Per-record evaluation (NumPy)"),
    (Artifact.Kind.PREDICTIONS, "evaluation-optimized.npz", None): (
        "evaluation-optimized", "Per-record evaluation, optimized (NumPy)"),
    (Artifact.Kind.ATTENTION, None, None): ("attention", "Attention maps (NumPy)"),
    (Artifact.Kind.EMBEDDINGS, "embeddings.npy", None): ("embeddings", "Embeddings (NumPy)"),
    (Artifact.Kind.EMBEDDINGS, "projection.npz", None): ("projection", "Embedding projections (NumPy)"),
    (Artifact.Kind.REPORT, "metrics.json", None): ("metrics", "Metrics (JSON)"),
    (Artifact.Kind.REPORT, "report.json", None): ("report", "Compression report (JSON)"),
    (Artifact.Kind.LOG, None, None): ("log", "Log"),
    (Artifact.Kind.CHECKPOINT, None, None): ("checkpoint", "Checkpoint"),
}
# Storage adds a random suffix to a name already taken (predictions_a1B2c3d.csv).
_STORAGE_SUFFIX = re.compile(r"_[A-Za-z0-9]{7}(?=\.[^.]+$)")


def artifact_download(artifact: Artifact) -> tuple[str, str]:
    """(download name, label) of an artifact: `model-optimized`, "Model, optimized"; an artifact not in
    DOWNLOADS is named by its kind and its file."""
    filename = _STORAGE_SUFFIX.sub("", artifact.file.name.rsplit("/", 1)[-1])
    variant = (artifact.metadata or {}).get("variant")
    variant = variant if variant != "baseline" else None
    for key in ((artifact.kind, filename, variant), (artifact.kind, None, variant), (artifact.kind, filename, None)):
        if key in DOWNLOADS:
            name, label = DOWNLOADS[key]
            if artifact.kind == Artifact.Kind.LOG and (artifact.metadata or {}).get("attempt"):
                label = f"Log of attempt {artifact.metadata['attempt']}"
            elif variant == "optimized" and (artifact.metadata or {}).get("profile"):
                label = f"{label} ({artifact.metadata['profile']})"
            return name, label
    return f"{artifact.kind}-{filename.rsplit('.', 1)[0]}", f"{artifact.get_kind_display()} ({filename})"
