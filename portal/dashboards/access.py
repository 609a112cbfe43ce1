"""The wrapper django-plotly-dash puts around each of its views (``PLOTLY_DASH["view_decorator"]``).

- Every Dash endpoint needs a signed-in user (anonymous requests go to the sign-in page). Which
  job or dataset a signed-in user may read is decided inside each callback, through the selectors
  (see ``portal.dashboards.common``).
- A dashboard name that is not ours, or an embedding id (``initial/<cache_id>``) that is not in the
  caller's session, is a 404 rather than the library's KeyError (a 500).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django_plotly_dash.dash_wrapper import all_apps
from django_plotly_dash.util import initial_argument_location


def dashboard_view(view_function: Callable[..., HttpResponse], **_kwargs: Any) -> Callable[..., HttpResponse]:
    @wraps(view_function)
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        ident = kwargs.get("ident")
        if kwargs.get("stateless") and ident is not None and ident not in all_apps():
            raise Http404(f"no dashboard named {ident!r}")
        cache_id = kwargs.get("cache_id")
        if cache_id and not initial_argument_location() and cache_id not in request.session:
            raise Http404("this dashboard embedding belongs to another session; reload the page")
        return view_function(request, *args, **kwargs)

    return login_required(view)
