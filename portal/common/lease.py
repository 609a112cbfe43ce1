"""One lease machine for every object a worker runs under a lease: jobs and predictions.

    queued ──> running ──> succeeded | failed | cancelled
    running ──> queued          (the worker was lost: heartbeat expired and attempts remain)

A worker holds the lease of an object while the object is ``running`` and its ``attempts`` counter is
the worker's attempt number (``job_start`` / ``prediction_start`` increment it). Everything a worker
writes is fenced by that pair: a worker that was paused (SIGSTOP, a VM freeze, a long GC) past the
heartbeat timeout comes back to find that the sweep gave its lease to a newer attempt, and every write
it tries is refused with ``StaleAttempt`` instead of overwriting the newer attempt's results.

- ``transition``: one conditional UPDATE (``WHERE pk = %s AND status IN (...) [AND attempts = mine]``);
  when two workers race, the database lets exactly one UPDATE match.
- ``heartbeat``: the same condition, touching ``heartbeat_at`` (and progress fields).
- ``fenced``: a transaction that first locks the row ``FOR UPDATE`` if, and only if, the attempt still
  holds the lease; the sweep's requeue UPDATE waits for it, so a write inside cannot interleave with
  a lease changing hands.
- ``sweep_lost`` (``requeue_lost`` for each) and ``dispatch_pending``: the sweeps (lost heartbeats,
  lost messages), the same for every object; the object gives its own enqueue and exhausted-attempts
  failure.

Each object's own ``services.py`` (portal.jobs, portal.results) builds one ``LeaseMachine`` and calls
it; no other module writes the ``status`` of a leased object. On the worker's side one heartbeat
reporter and one base Celery handler (``workers/leased.py``) serve every such object.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.common.errors import ServiceError

log = logging.getLogger(__name__)

RUNNING = "running"
QUEUED = "queued"
# How long the requeue sweep waits for a row another transaction holds (PostgreSQL's lock_not_available).
LOCK_WAIT_MS = 2000
LOCK_NOT_AVAILABLE = "55P03"


class StaleAttempt(ServiceError):
    """This attempt no longer holds the lease: the object was requeued (and perhaps taken by a newer
    attempt) or ended meanwhile. The worker must stop without writing anything more."""

    code = "stale_attempt"

    def __init__(self, *, label: str, pk: int, attempt: int, status: str | None, current_attempt: int | None) -> None:
        super().__init__(
            f"{label} {pk}: attempt {attempt} no longer holds its lease "
            f"(the {label} is {status or 'gone'}, attempt {current_attempt}); its writes are refused"
        )
        self.pk, self.attempt, self.status, self.current_attempt = pk, attempt, status, current_attempt


@dataclass(frozen=True)
class LeaseMachine:
    """The state machine and lease of one model (a ``status``, ``attempts``, ``max_attempts``,
    ``heartbeat_at``, ``dispatched_at`` and ``created_at`` column).

    ``transitions`` maps a target status to the statuses it may be entered from; ``error`` builds the
    model's own transition error from (pk, current status, target); ``touch`` names a column set to
    now on every transition (``updated_at``), if the model has one.
    """

    model: type[models.Model]
    label: str
    transitions: dict[str, tuple[str, ...]]
    error: Callable[[int, str, str], ServiceError]
    touch: str | None = None
    requeue_fields: dict[str, Any] = field(default_factory=dict)

    # --- leases held by attempts ---------------------------------------------------------------------
    def _stale(self, pk: int, attempt: int) -> StaleAttempt:
        row = self.model.objects.filter(pk=pk).values_list("status", "attempts").first()
        return StaleAttempt(label=self.label, pk=pk, attempt=attempt, status=row[0] if row else None,
                            current_attempt=row[1] if row else None)

    def holds(self, *, pk: int, attempt: int) -> models.QuerySet:
        """The row, filtered to where ``attempt`` holds the lease (empty otherwise)."""
        return self.model.objects.filter(pk=pk, status=RUNNING, attempts=attempt)

    @contextlib.contextmanager
    def fenced(self, *, pk: int, attempt: int | None) -> Iterator[None]:
        """A transaction in which ``attempt`` holds the lease (row locked), or ``StaleAttempt``.

        With ``attempt`` None (an administrator's or a test's write) it is a plain transaction.
        """
        with transaction.atomic():
            if attempt is not None and not self.holds(pk=pk, attempt=attempt).select_for_update().exists():
                raise self._stale(pk, attempt)
            yield

    def heartbeat(self, *, pk: int, attempt: int, **fields: Any) -> None:
        """The attempt is alive (and how far it got); ``StaleAttempt`` when its lease is gone."""
        if self.holds(pk=pk, attempt=attempt).update(heartbeat_at=timezone.now(), **fields) != 1:
            raise self._stale(pk, attempt)

    # --- the state machine --------------------------------------------------------------------------
    def transition(self, *, pk: int, target: str, allowed_from: tuple[str, ...] | None = None,
                   attempt: int | None = None, extra_filter: dict[str, Any] | None = None,
                   **fields: Any) -> models.Model:
        """Move the row to ``target`` in one conditional UPDATE; the model's transition error (or
        ``StaleAttempt``, when ``attempt`` is given and no longer holds the lease) if it cannot."""
        legal = self.transitions[target]
        sources = legal if allowed_from is None else tuple(s for s in allowed_from if s in legal)
        where: dict[str, Any] = {"pk": pk, "status__in": sources, **(extra_filter or {})}
        if attempt is not None:
            where.update(status=RUNNING, attempts=attempt)
        if self.touch:
            fields.setdefault(self.touch, timezone.now())
        if self.model.objects.filter(**where).update(status=target, **fields) != 1:
            row = self.model.objects.filter(pk=pk).values_list("status", "attempts").first()
            if row is None:
                raise self.model.DoesNotExist(f"{self.label} {pk} does not exist")
            if attempt is not None and (row[0] != RUNNING or row[1] != attempt):
                raise self._stale(pk, attempt)
            raise self.error(pk, row[0], target)
        return self.model.objects.get(pk=pk)

    # --- the sweeps -----------------------------------------------------------------------------------
    def lost_ids(self, *, stale_before: datetime, limit: int = 500) -> list[int]:
        """Running rows whose heartbeat is older than ``stale_before``."""
        return list(self.model.objects.filter(status=RUNNING, heartbeat_at__lt=stale_before)
                    .order_by("heartbeat_at").values_list("pk", flat=True)[:limit])

    def requeue_lost(self, *, pk: int, stale_before: datetime,
                     exhausted: Callable[[dict[str, Any]], models.Model]) -> tuple[str, models.Model]:
        """running → queued (attempts remain; the caller sends it to the broker) or ``exhausted(stale)``
        (none left: the caller fails the row with its own message, under the ``stale`` filter).

        The expired heartbeat is part of the UPDATE, so an attempt that beats at the last moment keeps
        its lease; once requeued, the old attempt's fenced writes are all refused.
        """
        stale = {"heartbeat_at__lt": stale_before}
        attempts, max_attempts = self.model.objects.values_list("attempts", "max_attempts").get(pk=pk)
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    # A worker frozen (SIGSTOP) inside a fenced write holds the row lock until it wakes:
                    # skip the row this time instead of blocking the whole sweep behind it.
                    with connection.cursor() as cursor:
                        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
                if attempts < max_attempts:
                    return QUEUED, self.transition(
                        pk=pk, target=QUEUED, extra_filter={**stale, "attempts__lt": F("max_attempts")},
                        heartbeat_at=None, dispatched_at=None, **self.requeue_fields)
                return "exhausted", exhausted(stale)
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise self.error(pk, "locked by its worker", QUEUED) from exc

    def sweep_lost(self, *, stale_before: datetime,
                   requeue: Callable[[int], models.Model]) -> dict[str, list[int]]:
        """Every lost row through ``requeue(pk)`` (the object's service around ``requeue_lost``, which
        also enqueues a requeued row); ``{"requeued": [...], "failed": [...]}``. A row that beat,
        finished or was cancelled between the read and the update is left as it is."""
        moved: dict[str, list[int]] = {"requeued": [], "failed": []}
        for pk in self.lost_ids(stale_before=stale_before):
            try:
                row = requeue(pk)
            except (ServiceError, self.model.DoesNotExist) as exc:
                log.info("%s %s changed meanwhile: %s", self.label, pk, exc)
                continue
            moved["requeued" if row.status == QUEUED else "failed"].append(pk)
        return moved

    def dispatch_pending(self, *, min_age: timedelta, resend_after: timedelta,
                         enqueue: Callable[[models.Model], bool], order_by: tuple[str, ...] = ("created_at",),
                         exclude: tuple[int, ...] | list[int] = (), limit: int = 500) -> list[int]:
        """Send the ``pending`` rows through ``enqueue`` (the object's own send, False when the broker
        did not take it); returns the rows sent."""
        rows = self.pending(min_age=min_age, resend_after=resend_after).exclude(pk__in=list(exclude))
        return [row.pk for row in rows.order_by(*order_by)[:limit] if enqueue(row)]

    def pending(self, *, min_age: timedelta, resend_after: timedelta) -> models.QuerySet:
        """Queued rows whose message never reached the broker (older than ``min_age``, so a submission
        committing right now is left to its own on-commit enqueue), or was sent longer than
        ``resend_after`` ago (a broker restarted without persistence loses messages). A duplicate
        message is harmless: only one delivery can start the row."""
        now = timezone.now()
        return self.model.objects.filter(status=QUEUED).filter(
            Q(dispatched_at__isnull=True, created_at__lt=now - min_age) | Q(dispatched_at__lt=now - resend_after))
