"""Real Celery worker processes for the integration tests: Redis broker (db 15), the PostgreSQL test
database, and the test's own media folder, all passed through the environment."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection

from portal.datasets.models import Dataset
from tests.portal.factories import DatasetFactory, MembershipFactory

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """A `celery worker` subprocess with its output collected in the background."""

    def __init__(self, env: dict[str, str], name: str, queues: str = "cpu,gpu", concurrency: int = 1,
                 beat: bool = False) -> None:
        self.name = name
        self.lines: list[str] = []
        # With beat: the periodic sweeps embedded, as `make demo` runs them on its short worker.
        embedded_beat = ["-B", "--schedule", str(Path(env["LABFORMER_VAR_DIR"]) / f"beat-{name}")] if beat else []
        Path(env["LABFORMER_VAR_DIR"]).mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", queues, "-c", str(concurrency),
             "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO", *embedded_beat],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(" ready." in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} did not start:\n{''.join(self.lines[-40:])}")

    def kill(self) -> None:
        """SIGKILL the whole worker (parent and pool children), as a machine dying would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return "".join(self.lines)


def _clear_our_keys(client: redis.Redis) -> None:
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    keys = list(client.scan_iter(match=f"{prefix}*")) if prefix else None
    if prefix and keys:
        client.delete(*keys)
    elif not prefix:
        client.flushdb()


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    """This run's broker keys, removed before and after (no message leaks between tests; another
    test run on the same Redis database keeps its own prefix and is left alone)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    _clear_our_keys(client)
    yield client
    _clear_our_keys(client)


@pytest.fixture
def worker_env(settings, tmp_path: Path) -> dict[str, str]:  # noqa: ANN001
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.config.settings",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABFORMER_VAR_DIR": str(tmp_path / "var"),
        "LABFORMER_HEARTBEAT_INTERVAL": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_worker(worker_env: dict[str, str], broker: redis.Redis) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def _start(*, queues: str = "cpu,gpu", concurrency: int = 1, beat: bool = False, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess({**worker_env, **extra_env}, name=f"test-{uuid.uuid4().hex[:8]}", queues=queues,
                               concurrency=concurrency, beat=beat)
        started.append(worker)
        worker.wait_ready()
        return worker

    yield _start
    for worker in started:
        worker.stop()


def planted_motif_csv(n: int, length: int = 60, seed: int = 0) -> bytes:
    """Synthetic DNA: label 1 sequences carry the motif TTGACGTC at a random place."""
    rng = random.Random(seed)
    rows = ["sequence,label"]
    for i in range(n):
        seq = [rng.choice("ACGT") for _ in range(length)]
        if i % 2:
            at = rng.randrange(0, length - 8)
            seq[at:at + 8] = "TTGACGTC"
        rows.append(f"{''.join(seq)},{i % 2}")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture
def dna_dataset() -> Callable[..., Dataset]:
    def _make(n: int = 160, length: int = 60) -> Dataset:
        membership = MembershipFactory()
        return DatasetFactory(
            owner=membership.user, lab=membership.lab, modality="dna", status=Dataset.Status.READY,
            original_file=ContentFile(planted_motif_csv(n, length), name="motif.csv"),
            schema={"input_cols": ["sequence"], "target_cols": ["label"]},
        )

    return _make


def wait_for(predicate: Callable[[], object], timeout: float, what: str, worker: WorkerProcess | None = None) -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = "\n" + worker.output()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{tail}")
