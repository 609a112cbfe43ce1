"""Template tags for embedding dashboards: ``{% load dashboards %}``.

``{% dashboard_args job_id=job.pk as args %}{% plotly_app name="training_curves" initial_arguments=args %}``
puts ``{"job_id": ...}`` into the dashboard's store (see ``portal.dashboards.common``).
"""

from typing import Any

from django import template

from portal.dashboards.common import initial_arguments

register = template.Library()

# django-plotly-dash keeps each embedding's arguments in the session under a fresh key per page view
# (settings.PLOTLY_DASH["cache_arguments"] is False). Only the newest ones are kept, so a long
# session does not grow without bound; a page older than that says "reload the page" (a 404).
SESSION_PREFIX = "dpd-initial-args-"
KEEP_EMBEDDINGS = 60


def prune_embeddings(session: Any, *, keep: int = KEEP_EMBEDDINGS) -> int:
    """Forget all but the newest ``keep`` embeddings' arguments; returns how many were dropped."""
    keys = [key for key in list(session.keys()) if key.startswith(SESSION_PREFIX)]
    stale = keys[: max(0, len(keys) - keep)]
    for key in stale:
        del session[key]
    return len(stale)


@register.simple_tag(takes_context=True)
def dashboard_args(context: template.Context, **data: Any) -> str:
    request = context.get("request")
    if request is not None and hasattr(request, "session"):
        prune_embeddings(request.session)
    return initial_arguments(**data)
