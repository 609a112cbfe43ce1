"""What a job produces. Rows are written by the worker through ``portal.results.services``."""

from __future__ import annotations

from django.db import models

from portal.jobs.models import Job


def artifact_path(instance: "Artifact", filename: str) -> str:
    return f"jobs/{instance.job_id}/{instance.kind}/{filename}"


class MetricPoint(models.Model):
    """One value of one metric at one step: the training curves."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="metric_points")
    split = models.CharField(max_length=16)  # train | val | test
    name = models.CharField(max_length=64)
    step = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField(default=0)
    value = models.FloatField(null=True)  # NaN is stored as NULL: an undefined metric, not zero
    attempt = models.PositiveSmallIntegerField(default=1)  # which run of the job recorded it (resumes)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "name", "split", "step"]
        indexes = [models.Index(fields=["job", "name", "split", "step"], name="metricpoint_job_name_step")]
        constraints = [
            models.UniqueConstraint(fields=["job", "split", "name", "step"], name="metricpoint_unique_per_step"),
        ]


class Artifact(models.Model):
    class Kind(models.TextChoices):
        CHECKPOINT = "checkpoint", "Checkpoint"
        MODEL = "model", "Model"
        PREDICTIONS = "predictions", "Predictions"
        ATTENTION = "attention", "Attention maps"
        EMBEDDINGS = "embeddings", "Embeddings"
        REPORT = "report", "Report"
        LOG = "log", "Log"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    file = models.FileField(upload_to=artifact_path, max_length=500)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "kind", "-created_at"]
        indexes = [models.Index(fields=["job", "kind"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    kind__in=["checkpoint", "model", "predictions", "attention", "embeddings", "report", "log"]
                ),
                name="artifact_kind_valid",
            ),
            models.CheckConstraint(condition=models.Q(size_bytes__gte=0), name="artifact_size_nonnegative"),
        ]


class Result(models.Model):
    """The final numbers of a finished job: baseline vs optimized model, and the compression report."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="result")
    baseline_metrics = models.JSONField(default=dict)
    optimized_metrics = models.JSONField(default=dict, blank=True)
    compression_report = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
