"""The worker's side of the lease machine (``portal.common.lease``), one copy for jobs and predictions.

- ``LeaseReporter``: the heartbeat of one attempt, from its own thread and database connection. Every
  beat is fenced by the attempt (``LeaseMachine.heartbeat``): once the sweep gave the lease to a newer
  attempt (this worker was paused, frozen or cut off past the heartbeat timeout), the reporter keeps
  the ``StaleAttempt`` and the work stops at its next ``check()`` (a training step, a prediction
  batch) without writing anything more. The training job's ``workers.runner.DatabaseReporter`` is one,
  with the metric points, progress, log and cancel flag added to each beat.
- ``LeasedHandler``: the base class of the Celery handlers that run a leased object (``run_job``,
  ``predict`` in workers/handlers.py). It acquires the lease (one delivery wins, a duplicate does
  nothing), runs the work, stops quietly when the lease was lost, fails the object when its process
  was killed at the hard time limit, and runs the two sweeps: requeue of lost leases and dispatch of
  pending messages. Each object names its services; the rest is here.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import TimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections, connection, models
from django.utils import timezone

from portal.common.errors import ServiceError
from portal.common.lease import LeaseMachine, StaleAttempt
from workers.db_retry import db_retry

log = logging.getLogger(__name__)

# A queued row younger than this is left to its own on-commit enqueue by the dispatch sweep.
DISPATCH_MIN_AGE = timedelta(seconds=10)


class LeaseReporter:
    """Beats for one attempt that holds the lease of one object (a job, a prediction).

    ``start()`` / ``stop()`` (or ``with``) run the heartbeat thread; every ``interval`` seconds it calls
    ``flush()``, i.e. ``beat()``. A lost lease is kept in ``stale``: ``check()`` raises it (call it
    between units of work) and ``should_stop()`` turns True; a cancel asked by the object's owner (a
    ``beat()`` returning True) turns ``should_stop()`` True as well. Any other failure (a database
    outage longer than the retries) is logged and the next beat tries again.
    """

    def __init__(self, *, lease: LeaseMachine, pk: int, attempt: int, interval: float | None = None) -> None:
        self.lease, self.pk, self.attempt = lease, pk, attempt
        self.interval = settings.LABFORMER_HEARTBEAT_INTERVAL if interval is None else interval
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"{lease.label}-heartbeat-{pk}", daemon=True)
        self.last_error: BaseException | None = None
        self.stale: StaleAttempt | None = None  # set once the lease is seen lost

    # --- what one beat writes (a subclass adds its own) ---------------------------------------------
    def beat(self) -> bool:
        """Tell the database this attempt is alive; True when the owner asked the work to stop.
        Raises ``StaleAttempt`` when the attempt no longer holds the lease."""
        db_retry(self.lease.heartbeat, what=f"the {self.lease.label} heartbeat", pk=self.pk, attempt=self.attempt)
        return False

    # --- the work's side ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``StaleAttempt`` once the lease is known lost: the work stops here, writing nothing."""
        if self.stale is not None:
            raise self.stale

    def should_stop(self) -> bool:
        return self._cancel.is_set() or self.stale is not None

    # --- the heartbeat thread's side ----------------------------------------------------------------
    def flush(self) -> None:
        """One beat now. A lost lease is remembered (``stale``) and raised."""
        try:
            if self.beat():
                self._cancel.set()
        except StaleAttempt as exc:
            self.stale = exc
            raise

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> LeaseReporter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.flush()
                except StaleAttempt as exc:
                    log.warning("%s; this attempt stops", exc)
                    return
                except Exception as exc:  # a database outage longer than the retries: try again next beat
                    self.last_error = exc
                    log.warning("%s %s: heartbeat failed: %s", self.lease.label, self.pk, exc)
                    close_old_connections()
        finally:
            connection.close()  # this thread's own connection


class LeasedHandler(Task):
    """Base of the Celery handlers that run one object under a lease (``bind=True``, the object's id
    as the only argument). A subclass names the object's model, lease and services."""

    model: ClassVar[type[models.Model]]
    lease: ClassVar[LeaseMachine]
    transition_error: ClassVar[type[ServiceError]]

    # --- the object's services ------------------------------------------------------------------------
    def acquire(self, pk: int, worker_hostname: str) -> models.Model:
        """queued → running for this delivery (the object's ``*_start``); the transition error when
        another delivery won or the object is no longer queued."""
        raise NotImplementedError

    def fail(self, pk: int, message: str, traceback: str) -> None:
        """running → failed, unfenced (the attempt's own process is gone)."""
        raise NotImplementedError

    def requeue_lost_since(self, stale_before: datetime) -> dict[str, list[int]]:
        """The object's ``*_sweep_lost``."""
        raise NotImplementedError

    def dispatch(self, *, min_age: timedelta, resend_after: timedelta, exclude: list[int]) -> list[int]:
        """The object's ``*_dispatch_pending``."""
        raise NotImplementedError

    # --- the same for every object --------------------------------------------------------------------
    @property
    def label(self) -> str:
        return self.lease.label

    def run_leased(self, pk: int, work: Callable[[Any], str]) -> str:
        """Acquire the lease of ``pk`` and ``work(started object)``; returns the final status, the
        status found when another delivery holds it, ``missing``, or ``stale`` when this attempt lost
        its lease on the way and stopped."""
        hostname = self.request.hostname or socket.gethostname()
        try:
            started = self.acquire(pk, hostname)
        except self.transition_error as exc:
            log.info("%s %s not started by %s: %s", self.label, pk, hostname, exc)
            return getattr(exc, "current", "conflict")
        except self.model.DoesNotExist:
            log.warning("%s %s no longer exists", self.label, pk)
            return "missing"
        try:
            return work(started)
        except StaleAttempt as exc:
            log.warning("%s %s attempt %s stopped: %s", self.label, pk, started.attempts, exc)
            return "stale"

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # noqa: ANN001 - celery's signature
        """The soft time limit raises inside the work and is handled there; the hard limit kills the
        pool process, and Celery then calls this in the worker's parent process: fail the object."""
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                self.fail(int(args[0]), f"the {self.label} was killed at its hard time limit ({exc}); it did not "
                          "stop at the soft limit", str(einfo))
            except (self.transition_error, self.model.DoesNotExist) as transition:
                log.info("%s %s: %s", self.label, args[0], transition)

    def requeue_lost(self) -> dict[str, list[int]]:
        """Running objects whose heartbeat expired go back to queued (attempts remain) or fail."""
        return self.requeue_lost_since(timezone.now() - timedelta(seconds=settings.LABFORMER_HEARTBEAT_TIMEOUT))

    def dispatch_pending(self, *, everything: bool = False, exclude: list[int] | None = None) -> list[int]:
        """Send queued objects whose message never reached the broker or was sent long ago;
        ``everything``: every queued one at once (the broker lost its messages)."""
        if everything:
            return self.dispatch(min_age=timedelta(0), resend_after=timedelta(0), exclude=exclude or [])
        return self.dispatch(min_age=DISPATCH_MIN_AGE, exclude=exclude or [],
                             resend_after=timedelta(seconds=settings.LABFORMER_REDISPATCH_AFTER))
