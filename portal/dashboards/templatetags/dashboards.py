"""Template tags for embedding dashboards: ``{% load dashboards %}``.

``{% dashboard_args job_id=job.pk as args %}{% plotly_app name="training_curves" initial_arguments=args %}``
puts ``{"job_id": ...}`` into the dashboard's store (see ``portal.dashboards.common``). The
arguments are bound to the signed-in user who renders the page: django-plotly-dash keeps them in
the shared cache under a fresh id per embedding, and only that user's requests get them back
(``portal.dashboards.access``).
"""

import json
from typing import Any

from django import template

from portal.dashboards.access import bind_to_user
from portal.dashboards.common import initial_arguments

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_args(context: template.Context, **data: Any) -> str:
    request = context.get("request")
    user = getattr(request, "user", None) if request is not None else None
    return json.dumps(bind_to_user(json.loads(initial_arguments(**data)), user))
