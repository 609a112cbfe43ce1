"""Settings for the test suite: the real services, PostgreSQL and Redis, unless told otherwise.

`pytest` run directly (not only through `make test`) must test against PostgreSQL: the race and
locking tests mean nothing on SQLite. Environment variables still win.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/labformer")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# Two test runs on one machine (two developers, or CI beside a session) must not share a test
# database or broker queues: both get this process's id. Worker subprocesses inherit the prefix.
os.environ.setdefault("CELERY_BROKER_KEY_PREFIX", f"test{os.getpid()}:")
_TEST_DB_NAME = os.environ.setdefault("LABFORMER_TEST_DB_NAME", f"test_labformer_{os.getpid()}")

from portal.config.settings import *  # noqa: E402,F403

DATABASES["default"]["TEST"] = {"NAME": _TEST_DB_NAME}  # noqa: F405

# Fast password hashing: tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The shared file cache (throttle counters, dashboard arguments) is this run's own too, so runs never
# see each other's entries; the live server and subprocesses of this run share it.
_TEST_CACHE_DIR = os.environ.setdefault("LABFORMER_TEST_CACHE_DIR", f"/tmp/labformer-test-cache-{os.getpid()}")
if CACHES["default"]["BACKEND"] == "portal.config.cache.ExpiringFileCache":  # noqa: F405
    CACHES["default"]["LOCATION"] = _TEST_CACHE_DIR  # noqa: F405
