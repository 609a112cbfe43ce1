"""The beat scheduler: Celery's persistent scheduler that sends a sweep only when none of its
messages is still waiting (the once-key of workers/broker.py), so sweeps never pile up behind a
busy or absent short worker. Configured as ``beat_scheduler`` in portal/config/celery.py.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

from portal.config.celery import SWEEP_INTERVALS_S
from workers.broker import sweep_claim, sweep_release

log = logging.getLogger(__name__)


class SweepScheduler(PersistentScheduler):
    """PersistentScheduler with at most one pending message per sweep."""

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any) -> Any:
        if entry.task not in SWEEP_INTERVALS_S:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        try:
            claimed = sweep_claim(entry.task)
        except Exception as exc:  # noqa: BLE001 - the broker is down: sending would fail the same way
            log.warning("sweep %s not sent: the broker does not answer (%s)", entry.task, exc)
            return None
        if not claimed:
            log.info("sweep %s not sent: its previous message has not started yet", entry.task)
            return None
        try:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        except Exception:
            sweep_release(entry.task)  # nothing was sent: the next beat may try again
            raise
