"""Template tags for embedding dashboards: ``{% load dashboards %}``.

``{% dashboard_args job_id=job.pk as args %}{% plotly_app name="training_curves" initial_arguments=args %}``
puts ``{"job_id": ...}`` into the dashboard's store (see ``portal.dashboards.common``). The
arguments are bound to the signed-in user who renders the page: django-plotly-dash keeps them in
the shared cache under a fresh id per embedding, and only that user's requests get them back
(``portal.dashboards.access``).
"""

import json
from types import SimpleNamespace
from typing import Any

from django import template
from django.urls import reverse
from django_plotly_dash.app_name import app_name as dpd_app_name
from django_plotly_dash.app_name import main_view_label
from django_plotly_dash.dash_wrapper import get_local_stateless_by_name
from django_plotly_dash.templatetags.plotly_dash import SANDBOX_STRING
from django_plotly_dash.util import store_initial_arguments

from portal.dashboards.access import bind_to_user
from portal.dashboards.common import initial_arguments

register = template.Library()


@register.simple_tag(takes_context=True)
def dashboard_args(context: template.Context, **data: Any) -> str:
    request = context.get("request")
    user = getattr(request, "user", None) if request is not None else None
    return json.dumps(bind_to_user(json.loads(initial_arguments(**data)), user))


@register.inclusion_tag("django_plotly_dash/plotly_app.html", takes_context=True)
def dashboard_frame(context: template.Context, name: str, initial_arguments: str | None = None,
                    height: str = "560px") -> dict[str, Any]:
    """django-plotly-dash's ``{% plotly_app name=... %}`` iframe, same markup, without building a
    Dash instance for the page: the tag only needs the app's URL, and a Dash instance costs
    ~20-50 ms of CPU (it reads every installed package's entry points), a third of a catalog page."""
    cache_id = store_initial_arguments(context["request"], initial_arguments)
    app = get_local_stateless_by_name(name)
    kwargs = {"ident": app._uid, **({"cache_id": cache_id} if cache_id else {})}
    url = reverse(f"{dpd_app_name}:app-{main_view_label}{'--args' if cache_id else ''}", kwargs=kwargs)
    return {
        "app": SimpleNamespace(base_url=url if url.endswith("/") else url + "/"),
        "dstyle": f"position: relative; height: {height}; overflow:hidden;",
        "istyle": "position: absolute; top: 0; left: 0; width: 100%; height: 100%;",
        "fbs": "0", "sandbox_settings": SANDBOX_STRING,
    }
