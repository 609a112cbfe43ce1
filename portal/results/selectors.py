"""Reads of results. Callers load the job through ``job_get_for_user`` first."""

from __future__ import annotations

import re
import time

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from portal.jobs.models import Job
from portal.jobs.selectors import job_list_for_user
from portal.results.models import Artifact, MetricPoint, Prediction


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
