"""Celery tasks: thin functions that load ids and call services (HackSoft / Galaxy style).

Task names come from ``portal.config.celery`` so producer and consumer cannot drift apart.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from portal.config.celery import TASK_REQUEUE_LOST_JOBS, app
from portal.jobs import selectors as job_selectors
from portal.jobs import services as job_services

log = logging.getLogger(__name__)


@app.task(name=TASK_REQUEUE_LOST_JOBS)
def requeue_lost_jobs() -> list[int]:
    """Move running jobs whose heartbeat expired back to queued (or to failed when no attempts remain)."""
    timeout = timedelta(seconds=settings.LABFORMER_HEARTBEAT_TIMEOUT)
    stale_before = timezone.now() - timeout
    moved: list[int] = []
    for job_id in job_selectors.job_list_lost_ids(timeout=timeout):
        try:
            job_services.job_requeue_lost(job_id=job_id, stale_before=stale_before)
            moved.append(job_id)
        except job_services.JobTransitionError as exc:
            # It beat, finished or was cancelled between the read and the update: nothing to do.
            log.info("job %s changed meanwhile: %s", job_id, exc)
    return moved
