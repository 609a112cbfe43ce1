"""Retry a worker's database write through a dropped connection.

A database failover, a pooler restart or ``pg_terminate_backend`` closes every connection; Django does
not reconnect by itself inside a long-running handler, so each later query of the training process would
raise ``OperationalError`` / ``InterfaceError`` and the job would fail for a reason that is not its
own. ``db_retry`` closes the broken connection (the next query opens a fresh one) and calls the write
again with a growing pause, for at most ``LABFORMER_DB_RETRY_S`` seconds.

Only idempotent writes are passed here: metric points are upserts by (job, split, name, step), the
heartbeat and the transitions are conditional UPDATEs, the result an ``update_or_create``. Inside a
transaction nothing can be retried (the transaction is gone with the connection): the error goes up
to whoever opened it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT = (OperationalError, InterfaceError)
FIRST_PAUSE_S = 0.5
MAX_PAUSE_S = 5.0


def db_reconnect() -> None:
    """Drop this thread's connection (broken or not); the next query opens a new one."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a dead connection may itself fail; it is gone either way
        connection.connection = None


def db_retry(write: Callable[..., T], /, *args: object, what: str = "", **kwargs: object) -> T:
    """``write(*args, **kwargs)``, retried after a transient database error until it succeeds or
    ``LABFORMER_DB_RETRY_S`` seconds have passed (then the last error is raised)."""
    deadline = time.monotonic() + settings.LABFORMER_DB_RETRY_S
    pause = FIRST_PAUSE_S
    while True:
        try:
            return write(*args, **kwargs)
        except TRANSIENT as exc:
            if connection.in_atomic_block or time.monotonic() + pause > deadline:
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning("database error in %s (%s); reconnecting and retrying in %.1f s",
                        what or getattr(write, "__name__", "a write"), reason, pause)
            db_reconnect()
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
