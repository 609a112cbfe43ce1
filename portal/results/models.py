"""What a job produces. Rows are written by the worker through ``portal.results.services``."""

from __future__ import annotations

from django.conf import settings
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
    # Where the model was trained (mlcore.recipe.environment: device and its name, precision as resolved,
    # torch and CUDA versions, threads, ranks); {} for results recorded before it existed.
    environment = models.JSONField(default=dict, blank=True)
    # How the job is judged, fixed when it finished (results_services.result_record): the target kind it
    # ran as (a "binary" task on 3 classes runs as multiclass), that kind's primary metric and direction,
    # and the baseline model's test value of it. Read through results.selectors.primary_metric.
    target_kind = models.CharField(max_length=32, blank=True)
    primary_metric = models.CharField(max_length=64, blank=True)
    greater_is_better = models.BooleanField(default=True)
    primary_value = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


def prediction_path(instance: "Prediction", filename: str) -> str:
    return f"predictions/{instance.job_id}/{instance.uid}/{filename}"


class Prediction(models.Model):
    """Predictions for new records with a finished job's model, asked for through the API.

    Small batches travel inline (``records`` in, ``predictions`` out, in this row) and the API request
    waits for them; large ones are stored as ``input_file`` and answered with ``result_file`` (CSV).
    A worker fills the row; the status changes only in ``portal.results.services``:

        queued ──> running ──> succeeded | failed
        running ──> queued   (worker lost: heartbeat expired and attempts remain)
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Variant(models.TextChoices):
        BASELINE = "baseline", "Baseline model"
        OPTIMIZED = "optimized", "Optimized model (the job's profile)"

    class Output(models.TextChoices):
        INLINE = "inline", "Inline (JSON in the response)"
        FILE = "file", "File (CSV to download)"

    uid = models.UUIDField(unique=True)  # names the stored files; the API uses the integer id
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="predictions")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="predictions")
    model_artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="predictions")
    variant = models.CharField(max_length=16, choices=Variant.choices, default=Variant.BASELINE)
    output = models.CharField(max_length=8, choices=Output.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    n_records = models.PositiveIntegerField(null=True, blank=True)  # known up front for JSON, after reading for files
    records = models.JSONField(null=True, blank=True)  # inline input; cleared once finished
    input_file = models.FileField(upload_to=prediction_path, max_length=500, blank=True)
    input_filename = models.CharField(max_length=255, blank=True)  # as sent (its suffix tells the format)
    predictions = models.JSONField(null=True, blank=True)  # inline output, one object per record
    result_file = models.FileField(upload_to=prediction_path, max_length=500, blank=True)
    result_sha256 = models.CharField(max_length=64, blank=True)
    result_size_bytes = models.BigIntegerField(default=0)
    error_code = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    error_records = models.JSONField(default=list, blank=True)  # [{"index"|"line": n, "id": ..., "message": ...}]
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    worker_hostname = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner", "-created_at"], name="prediction_owner_created"),
            models.Index(fields=["status", "heartbeat_at"], name="prediction_status_heartbeat"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["queued", "running", "succeeded", "failed"]),
                                   name="prediction_status_valid"),
            models.CheckConstraint(condition=models.Q(variant__in=["baseline", "optimized"]),
                                   name="prediction_variant_valid"),
            models.CheckConstraint(condition=models.Q(output__in=["inline", "file"]), name="prediction_output_valid"),
        ]
