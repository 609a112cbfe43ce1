"""Worker entry: set up Django, then register the handler module (workers/handlers.py) with the shared app."""

import django

from portal.config.celery import app

django.setup()
app.autodiscover_tasks(["workers"], related_name="handlers", force=True)

__all__ = ["app"]
