"""Celery workers: the only place where portal models and mlcore meet.

Run with ``celery -A workers worker -Q cpu`` (or ``-Q gpu -c 1`` per GPU).
"""

from portal.config.celery import app

__all__ = ["app"]
