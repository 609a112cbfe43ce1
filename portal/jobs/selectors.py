"""Reads of jobs. Every access to a job on behalf of a user goes through here."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from portal.accounts.selectors import visible_to_user_q
from portal.jobs.models import Job, JobLog


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


def job_log_tail(*, job: Job, attempt: int | None = None, max_chars: int = 64 * 1024) -> JobLog | None:
    """The log of `attempt` (default: the latest one that logged), its text cut to the last
    `max_chars` at a line start; None when that attempt logged nothing yet."""
    logs = JobLog.objects.filter(job=job)
    row = (logs.filter(attempt=attempt) if attempt is not None else logs.order_by("-attempt")).first()
    if row is not None and len(row.text) > max_chars:
        tail = row.text[len(row.text) - max_chars:]
        row.text = tail[tail.find("\n") + 1:]  # the first line was cut in the middle (or: nothing left)
    return row


def job_log_attempts(*, job: Job) -> list[int]:
    """The attempts of `job` that have a log, oldest first."""
    return list(JobLog.objects.filter(job=job).order_by("attempt").values_list("attempt", flat=True))


def job_log_size(*, job: Job) -> tuple[int | None, int]:
    """(the latest attempt that logged, the characters it logged), without reading the text."""
    row = JobLog.objects.filter(job=job).order_by("-attempt").values_list("attempt", "chars_total").first()
    return (row[0], row[1]) if row else (None, 0)
