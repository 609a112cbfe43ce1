"""Reads of results. Callers load the job through ``job_get_for_user`` first."""

from __future__ import annotations

from django.db.models import QuerySet

from portal.jobs.models import Job
from portal.results.models import Artifact, MetricPoint


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
