"""Worker entry: set up Django, then register the task modules with the shared app."""

import django

from portal.config.celery import app

django.setup()
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)

__all__ = ["app"]
