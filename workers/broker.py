"""What the workers and beat keep beside the broker's messages: the sweeps' once-keys and the
broker's epoch, by which a Redis that lost its data is noticed.

Once-keys: beat sends a sweep only when no message of that sweep is already waiting. It claims
``labformer:sweep-pending:<handler name>`` before sending, the worker releases it when the sweep starts, and
the key expires with the message (``SWEEP_PENDING_TTL_S``) so a lost message never blocks its sweep
for longer. A key beside the messages, not only ``expires`` on them: ``expires`` drops a stale message
when a worker finally takes it, but while no short worker answers, messages would still pile up in the
broker at every beat; with the key there is at most one per sweep and TTL.

Epoch: a Redis restarted without persistence comes back empty, so every queued job's message is gone
while the database still says the job was dispatched. The dispatch sweep stores the Redis server's
``run_id`` in ``labformer:broker-epoch``; when the key is missing (the data is gone) or holds another
``run_id`` (the server restarted, and a snapshot may predate the last messages), everything still
waiting is sent again at once. A duplicate message is harmless (only one delivery can start a job,
a prediction or a validation), a lost one would wait ``LABFORMER_REDISPATCH_AFTER``.

The embedded filesystem broker keeps its once-keys as files beside its messages; it loses nothing on
a restart, so it has no epoch.
"""

from __future__ import annotations

import logging
import os
import time
from functools import lru_cache
from pathlib import Path

import redis
from django.conf import settings

from portal.config.celery import SWEEP_PENDING_TTL_S, app

log = logging.getLogger(__name__)

_SWEEP_KEY = "labformer:sweep-pending:"
_EPOCH_KEY = "labformer:broker-epoch"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts: beat and the sweeps must not hang on a broker that does not answer.
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def broker_redis() -> redis.Redis | None:
    """A client of the broker's Redis database, or None when the broker is not Redis."""
    url = str(app.conf.broker_url or "")
    return _client(url) if url.startswith(("redis://", "rediss://")) else None


def _key(name: str) -> str:
    # The broker's own prefix: installations and test runs sharing one Redis database stay apart.
    return f"{(app.conf.broker_transport_options or {}).get('global_keyprefix', '')}{name}"


def _claim_file(task_name: str) -> Path:
    return Path(settings.BROKER_DIR) / "sweep-pending" / task_name


def sweep_claim(task_name: str, ttl_s: int = SWEEP_PENDING_TTL_S) -> bool:
    """Claim the right to send one message of this sweep; False while an earlier one still waits."""
    client = broker_redis()
    if client is not None:
        return bool(client.set(_key(_SWEEP_KEY + task_name), str(time.time()), nx=True, ex=ttl_s))
    path = _claim_file(task_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if time.time() - path.stat().st_mtime > ttl_s:
            path.unlink(missing_ok=True)  # expired, like the Redis key would
    except FileNotFoundError:
        pass
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def sweep_release(task_name: str) -> None:
    """The sweep started (or its message could not be sent): beat may send the next one. Never raises:
    a key left behind only delays the next sweep until it expires."""
    try:
        client = broker_redis()
        if client is not None:
            client.delete(_key(_SWEEP_KEY + task_name))
        else:
            _claim_file(task_name).unlink(missing_ok=True)
    except (redis.RedisError, OSError) as exc:
        log.warning("sweep %s: its once-key could not be released (%s); it expires on its own", task_name, exc)


def broker_restart_seen() -> str | None:
    """The broker's current run id when its Redis restarted or lost its data since the epoch was last
    stored (messages may be gone), else None; always None for a broker that is not Redis."""
    client = broker_redis()
    if client is None:
        return None
    run_id = str(client.info("server").get("run_id", ""))
    seen = client.get(_key(_EPOCH_KEY))
    return run_id if seen is None or seen.decode() != run_id else None


def broker_epoch_store(run_id: str) -> None:
    """Remember the run whose lost messages were sent again. The run id read before the resend, not
    now: a restart in between then still differs from what is stored, and is seen next time."""
    client = broker_redis()
    if client is not None:
        client.set(_key(_EPOCH_KEY), run_id)
