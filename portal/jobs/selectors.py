"""Reads of jobs. Every access to a job on behalf of a user goes through here."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import QuerySet

from portal.accounts.selectors import visible_to_user_q
from portal.datasets.models import Dataset
from portal.jobs.models import Job, JobLog


def job_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Job]:
    return Job.objects.filter(visible_to_user_q(user=user)).select_related("owner", "lab", "dataset")


def job_get_for_user(*, user: AbstractBaseUser | AnonymousUser, job_id: int) -> Job:
    """The job if ``user`` may see it; ``Job.DoesNotExist`` otherwise (a 404, never a 403)."""
    return job_list_for_user(user=user).get(pk=job_id)


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


CATALOG_FACETS_TTL = 300  # seconds


@dataclass(frozen=True)
class CatalogFacets:
    """The catalog's data-dependent filter choices: who owns, and which datasets have, a visible job."""

    owners: tuple[str, ...]
    datasets: tuple[tuple[int, str], ...]  # (dataset id, "name vN")


def catalog_facets(*, user: AbstractBaseUser, jobs: QuerySet[Job]) -> CatalogFacets:
    """``jobs``' facets, cached per user until a job is created (the key holds the newest job id) or
    for CATALOG_FACETS_TTL seconds (a job made visible or a dataset renamed shows after that).

    Computed as semi-joins on the job table rather than DISTINCT over jobs joined with users and
    datasets; cached because every catalog page (and every filter change) needs them.
    """
    newest = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    key = f"catalog-facets:{user.pk}:{newest}"
    facets = cache.get(key)
    if facets is None:
        job_rows = jobs.order_by()
        owners = (get_user_model().objects.filter(pk__in=job_rows.values("owner_id"))
                  .order_by("username").values_list("username", flat=True))
        datasets = (Dataset.objects.filter(pk__in=job_rows.values("dataset_id"))
                    .order_by("name", "-version").values_list("pk", "name", "version"))
        facets = CatalogFacets(owners=tuple(owners), datasets=tuple((pk, f"{n} v{v}") for pk, n, v in datasets))
        cache.set(key, facets, CATALOG_FACETS_TTL)
    return facets

