"""The Job row. Its ``status`` is changed only by ``portal.jobs.services``."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mlcore import catalog
from portal.accounts.models import Lab, Visibility
from portal.datasets.models import Dataset


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Device(models.TextChoices):
        CPU = "cpu", "CPU"
        GPU = "gpu", "GPU"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="jobs")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.LAB)
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="jobs")
    name = models.CharField(max_length=200, blank=True)
    # Catalog keys (mlcore.catalog.TASKS, PROFILES), checked by job_submit, not frozen as choices here:
    # a task or profile added to the catalog needs no migration.
    task_key = models.CharField(max_length=64)
    profile_key = models.CharField(max_length=32)
    # Everything the worker needs, frozen at submission: later catalog changes never alter a job.
    config = models.JSONField(default=dict)
    # The profile's options (mlcore.catalog.ProfileOption), typed and complete (defaults filled in) by
    # catalog.profile_options_resolve at submission; the worker passes them to the profile.
    options = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.CPU)
    gpu_count = models.PositiveSmallIntegerField(default=0)
    priority = models.SmallIntegerField(default=0)  # higher runs first where the broker supports it
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)  # how many times a worker started it
    max_attempts = models.PositiveSmallIntegerField(default=3)
    cancel_requested = models.BooleanField(default=False)
    progress = models.FloatField(default=0.0)  # fraction of the planned training steps done
    epoch = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    # The recipe's phase (preparing, training, evaluating, explaining, optimizing...), the
    # `phase_index`-th of `phase_count`: after training, `progress` alone would sit still.
    phase = models.CharField(max_length=32, blank=True)
    phase_index = models.PositiveSmallIntegerField(default=0)
    phase_count = models.PositiveSmallIntegerField(default=0)
    error_message = models.TextField(blank=True)
    error_traceback = models.TextField(blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the job's message last reached the broker; NULL while queued means it never did (the
    # broker was down at submission) and the dispatch sweep will send it.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    time_limit_s = models.PositiveIntegerField(default=24 * 3600)  # soft limit; the hard one adds a grace period
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "running", "succeeded", "failed", "cancelled"]),
                name="job_status_valid",
            ),
            models.CheckConstraint(condition=models.Q(progress__gte=0.0, progress__lte=1.0), name="job_progress_range"),
            models.CheckConstraint(
                condition=models.Q(device="cpu", gpu_count=0) | models.Q(device="gpu", gpu_count__gte=1),
                name="job_device_gpu_count_consistent",
            ),
            models.CheckConstraint(
                condition=models.Q(visibility__in=["private", "lab", "public"]), name="job_visibility_valid"
            ),
            models.UniqueConstraint(
                fields=["owner", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="job_idempotency_key_unique_per_owner",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "heartbeat_at"]),
            models.Index(fields=["status", "dispatched_at"]),
            models.Index(fields=["lab", "status"]),
            models.Index(fields=["owner", "status"]),
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.task_key}, {self.status})"

    @property
    def task_label(self) -> str:
        """The task's label from the catalog, read now (the key itself for a task no longer listed)."""
        task = catalog.TASKS.get(self.task_key)
        return task.label if task else self.task_key

    @property
    def profile_label(self) -> str:
        """The profile's label from the catalog (the key itself for a profile no longer listed)."""
        profile = catalog.PROFILES.get(self.profile_key)
        return profile.label if profile else self.profile_key

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def phase_text(self) -> str:
        """'Optimizing (step 5 of 5)'; '' before the worker named a phase."""
        if not self.phase:
            return ""
        return f"{self.phase.capitalize()} (step {self.phase_index} of {self.phase_count})"


class JobLog(models.Model):
    """The log of one attempt of a job, appended by the worker while it runs (workers/joblog.py).

    The page and the API read its tail while the attempt runs and after it ended; the whole file is
    also stored as a LOG artifact when the attempt ends. Only the last `MAX_CHARS` are kept here.
    """

    MAX_CHARS = 1_000_000

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True)
    chars_total = models.BigIntegerField(default=0)  # everything ever appended, including what was trimmed
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "attempt"]
        constraints = [models.UniqueConstraint(fields=["job", "attempt"], name="joblog_one_per_attempt")]

    def __str__(self) -> str:
        return f"Log of job {self.job_id} attempt {self.attempt}"

class WorkerSeen(models.Model):
    """A worker process that has started at least once, and the queues it serves.

    Written by the worker itself when it is ready (``workers.handlers.register_worker``), so submission
    can refuse a GPU job no worker could ever take instead of leaving it queued forever. Kept after
    the worker stops: "has ever been seen" is what is checked (a GPU machine may be down for the night).
    """

    hostname = models.CharField(max_length=255, unique=True)  # celery's node name, e.g. gpu@node-3
    queues = models.JSONField(default=list)
    gpus = models.PositiveSmallIntegerField(default=0)  # GPUs it owns when it serves the gpu queue, else 0
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} ({', '.join(self.queues)})"
