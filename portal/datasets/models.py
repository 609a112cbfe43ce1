"""The Dataset row: one uploaded file, its validation state and its canonical copy."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mlcore import catalog
from portal.accounts.models import Lab, Visibility


def dataset_original_path(instance: "Dataset", filename: str) -> str:
    # Paths are built from ids, never from what a request says, so no upload can pick its place.
    return f"datasets/{instance.lab_id}/{instance.uid}/original/{filename}"


def dataset_canonical_path(instance: "Dataset", filename: str) -> str:
    return f"datasets/{instance.lab_id}/{instance.uid}/canonical/{filename}"


class Dataset(models.Model):
    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        VALIDATING = "validating", "Validating"
        READY = "ready", "Ready"
        INVALID = "invalid", "Invalid"

    class Policy(models.TextChoices):
        STRICT = "strict", "Strict: any bad record makes the dataset invalid"
        SKIP = "skip", "Skip: bad records are dropped, counted and listed"

    uid = models.UUIDField(unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="datasets")
    lab = models.ForeignKey(Lab, on_delete=models.PROTECT, related_name="datasets")
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.LAB)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    # A catalog key (mlcore.catalog.MODALITIES), checked by the dataset services, not frozen as choices.
    modality = models.CharField(max_length=32)
    original_file = models.FileField(upload_to=dataset_original_path, max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    canonical_file = models.FileField(upload_to=dataset_canonical_path, max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    row_count = models.BigIntegerField(null=True, blank=True)
    # The upload's column mapping as mlcore.columns.ColumnMapping.to_dict() ({"input_cols": ["seq"],
    # "target_cols": ["label"], ...}, empty entries left out) beside its "task" and validation "options".
    schema = models.JSONField(default=dict, blank=True)
    policy = models.CharField(max_length=8, choices=Policy.choices, default=Policy.STRICT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    validation_report = models.JSONField(default=dict, blank=True)
    # When the validation message reached the broker; NULL while it has not (the broker was down at
    # upload): the dataset sweep sends it then, as the dispatch sweep does for jobs.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["lab", "name", "version"], name="dataset_lab_name_version_unique"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="dataset_version_positive"),
            models.CheckConstraint(condition=models.Q(size_bytes__gte=0), name="dataset_size_nonnegative"),
            models.CheckConstraint(
                condition=models.Q(status__in=["uploaded", "validating", "ready", "invalid"]),
                name="dataset_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(visibility__in=["private", "lab", "public"]), name="dataset_visibility_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["lab", "status"]),
            models.Index(fields=["visibility"]),
            models.Index(fields=["lab", "sha256"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def modality_label(self) -> str:
        """The modality's label from the catalog (the key itself for one no longer listed)."""
        modality = catalog.MODALITIES.get(self.modality)
        return modality.label if modality else self.modality


class UploadSession(models.Model):
    """A chunked, resumable upload in progress. Chunks are appended to a staging file in order; the
    server's ``offset`` is the truth a client resumes from after a dropped connection."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FINISHED = "finished", "Finished"
        ABORTED = "aborted", "Aborted"

    uid = models.UUIDField(unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="upload_sessions")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="upload_sessions")
    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    modality = models.CharField(max_length=32)
    visibility = models.CharField(max_length=16, choices=Visibility.choices, default=Visibility.LAB)
    policy = models.CharField(max_length=8, default="strict")
    description = models.TextField(blank=True)
    schema = models.JSONField(default=dict, blank=True)
    size_bytes = models.BigIntegerField()  # the whole file's size, declared at creation
    offset = models.BigIntegerField(default=0)  # bytes received so far, in order
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(offset__gte=0, offset__lte=models.F("size_bytes")),
                                   name="upload_offset_within_size"),
        ]
