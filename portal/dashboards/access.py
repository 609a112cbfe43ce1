"""The wrapper django-plotly-dash puts around each of its views (``PLOTLY_DASH["view_decorator"]``),
and where a page's dashboard arguments are kept.

- Every Dash endpoint needs a signed-in user (anonymous requests go to the sign-in page). Which
  job or dataset a signed-in user may read is decided inside each callback, through the selectors
  (see ``portal.dashboards.common``).
- A dashboard name that is not ours, or an embedding id (``initial/<cache_id>``) that is unknown,
  expired or was rendered for another user, is a 404 rather than the library's KeyError (a 500).

Arguments. The ids a page hands its dashboards (``{% dashboard_args %}`` then ``{% plotly_app
initial_arguments=... %}``) are stored by django-plotly-dash in the default cache
(``PLOTLY_DASH["cache_arguments"]``), which every web process shares (Redis, or files under
``VAR_DIR``), one key per embedding, bound to the user who rendered the page (:data:`OWNER_KEY`).
They are not kept in the session: the library's update view writes the session back on every
callback, so a callback still running from the previous page would save an old session over the
arguments the next page had just stored. Each use of an embedding extends its lifetime, so a page
left open keeps working; and an update that changed nothing in the session does not save it
(:func:`dashboard_view`), so a slow callback can no longer undo what another request wrote there
(the lab chosen in the header, for one).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django_plotly_dash.dash_wrapper import all_apps
from django_plotly_dash.util import cache_timeout_initial_arguments, initial_argument_location

# The key, beside the component ids, under which an embedding's arguments name the user they were
# rendered for. No component has this id, so the library's layout ignores it.
OWNER_KEY = "labformer-owner"
# Where django-plotly-dash keeps its per-session app state (written by its update view).
DPD_SESSION_KEY = "django_plotly_dash"


def bind_to_user(arguments: Mapping[str, Any], user: Any) -> dict[str, Any]:
    """``arguments`` (component id -> properties) marked as rendered for ``user``."""
    return {**arguments, OWNER_KEY: getattr(user, "pk", None)}


def embedding_arguments(cache_id: str, user: Any) -> dict[str, Any] | None:
    """The stored arguments of embedding ``cache_id`` if ``user`` rendered it, else None (unknown,
    expired, or another user's). Reading it extends its lifetime."""
    if not initial_argument_location():
        raise RuntimeError('PLOTLY_DASH["cache_arguments"] must be True: dashboard arguments live in the shared cache')
    stored = cache.get(cache_id)
    owner = getattr(user, "pk", None)
    if not isinstance(stored, dict) or owner is None or stored.get(OWNER_KEY) != owner:
        return None
    cache.touch(cache_id, cache_timeout_initial_arguments())
    return stored


def _session_state(session: Any) -> dict[str, Any]:
    """The session's content, with the library's empty app state counted as absent."""
    return {key: value for key, value in session.items() if not (key == DPD_SESSION_KEY and not value)}


def dashboard_view(view_function: Callable[..., HttpResponse], **_kwargs: Any) -> Callable[..., HttpResponse]:
    @wraps(view_function)
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        ident = kwargs.get("ident")
        if kwargs.get("stateless") and ident is not None and ident not in all_apps():
            raise Http404(f"no dashboard named {ident!r}")
        cache_id = kwargs.get("cache_id")
        if cache_id and embedding_arguments(cache_id, request.user) is None:
            raise Http404("this dashboard embedding is unknown or has expired; reload the page")
        if request.method != "POST":
            return view_function(request, *args, **kwargs)
        # A callback (the update view) assigns the library's app state back into the session, which
        # marks it modified: Django would then save this request's copy of the whole session, loaded
        # when the callback started, over anything another request stored meanwhile.
        before = copy.deepcopy(_session_state(request.session))
        was_modified = request.session.modified
        response = view_function(request, *args, **kwargs)
        if not was_modified and _session_state(request.session) == before:
            request.session.modified = False
        return response

    return login_required(view)
