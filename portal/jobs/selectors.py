"""Reads of jobs. Every access to a job on behalf of a user goes through here."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from portal.accounts.selectors import visible_to_user_q
from portal.jobs.models import Job


def job_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(visible_to_user_q(user=user)).select_related("owner", "lab", "dataset")


def job_get_for_user(*, user: AbstractBaseUser | AnonymousUser, job_id: int) -> Job:
    """The job if ``user`` may see it; ``Job.DoesNotExist`` otherwise (a 404, never a 403)."""
    return job_list_for_user(user=user).get(pk=job_id)


def job_list_lost_ids(*, timeout: timedelta) -> list[int]:
    """Ids of running jobs whose last heartbeat is older than ``timeout`` (their worker is gone)."""
    stale_before = timezone.now() - timeout
    return list(
        Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale_before).values_list("pk", flat=True)
    )
