"""Settings for the test suite: the real services, PostgreSQL and Redis, unless told otherwise.

`pytest` run directly (not only through `make test`) must test against PostgreSQL: the race and
locking tests mean nothing on SQLite. Environment variables still win.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/labformer")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

from portal.config.settings import *  # noqa: E402,F403

# Fast password hashing: tests create many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
