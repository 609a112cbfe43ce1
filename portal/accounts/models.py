"""Labs and who belongs to them. Users are Django's own ``auth.User``."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Lab(models.Model):
    """A research group: the unit that shares datasets, jobs and results."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"  # manages members; everything a member can do
        MEMBER = "member", "Member"  # uploads datasets and launches jobs
        VIEWER = "viewer", "Viewer"  # reads what the lab shares, writes nothing

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    lab = models.ForeignKey(Lab, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "lab"], name="membership_user_lab_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=["owner", "member", "viewer"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.lab} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in (self.Role.OWNER, self.Role.MEMBER)


class Visibility(models.TextChoices):
    """Who may see a dataset or a job besides its owner."""

    PRIVATE = "private", "Private (only me)"
    LAB = "lab", "Lab (members of its lab)"
    PUBLIC = "public", "Public (everyone signed in)"


class APIToken(models.Model):
    """A personal API token. Only a SHA-256 of the secret is stored; the secret is shown once.

    The token reads ``lf_<prefix>_<secret>``: the prefix finds the row, the hash proves the secret.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (lf_{self.prefix}_…)"
