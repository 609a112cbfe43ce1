"""Celery workers: the only place where portal models and mlcore meet.

Run with ``celery -A workers worker -Q cpu`` (or ``-Q gpu -c 1`` per GPU).
"""

from mlcore.threads import spin_off

# Before anything loads torch (the handler module does): a worker shares its machine, so torch's OpenMP
# threads sleep between parallel regions instead of spinning (see mlcore.threads).
spin_off()

from portal.config.celery import app  # noqa: E402 - after spin_off on purpose

__all__ = ["app"]
