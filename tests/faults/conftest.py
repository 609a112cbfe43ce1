"""Fault-injection tests run on the real stack: the workers' fixtures (Redis broker, real Celery worker
processes, the PostgreSQL test database) are shared from tests/workers."""

from tests.workers.conftest import *  # noqa: F401,F403
