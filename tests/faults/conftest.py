"""Fault-injection tests run on the real stack: the worker fixtures of tests/workers (real Celery
worker processes, the Redis broker with this run's key prefix, the PostgreSQL test database)."""

from tests.workers.conftest import broker, dna_dataset, start_worker, worker_env  # noqa: F401 - fixtures
