"""Stored responses of POSTs sent with an Idempotency-Key, so a retried request gets the first answer."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class IdempotentRequest(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=128)
    endpoint = models.CharField(max_length=200)  # method + path: one key is not reused across endpoints
    status_code = models.PositiveSmallIntegerField(null=True)  # NULL while the first request runs
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotent_request_user_key_unique")]
