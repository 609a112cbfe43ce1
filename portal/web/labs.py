"""The lab a signed-in user is working in, kept in the session.

Pages that create something (an upload, a job launch) preselect this lab; lists may filter by it.
The session holds only the lab's id; every read checks again that the user still belongs to it,
so a user removed from a lab simply falls back to another of their labs.
"""

from __future__ import annotations

from django.http import HttpRequest

from portal.accounts.models import Lab
from portal.accounts.selectors import lab_list_for_user

SESSION_KEY = "labformer_lab_id"
_CACHE_ATTR = "_labformer_current_lab"


def current_lab(request: HttpRequest, *, among: list[Lab] | None = None) -> Lab | None:
    """The lab chosen with the switcher if the user is still a member, else their first lab (by name),
    else None (anonymous users and users in no lab). Read once per request; ``among`` (all the
    user's labs ordered by name, already loaded) spares the queries."""
    if hasattr(request, _CACHE_ATTR):
        return getattr(request, _CACHE_ATTR)
    lab = None
    if among is not None:
        chosen = request.session.get(SESSION_KEY)
        lab = next((lab for lab in among if lab.pk == chosen), among[0] if among else None)
    elif request.user.is_authenticated:
        labs = lab_list_for_user(user=request.user)
        chosen = request.session.get(SESSION_KEY)
        if chosen is not None:
            lab = labs.filter(pk=chosen).first()
        if lab is None:
            lab = labs.order_by("name", "pk").first()
    setattr(request, _CACHE_ATTR, lab)
    return lab


def current_lab_set(request: HttpRequest, *, slug: str) -> Lab:
    """Make the lab ``slug`` the current one; ``Lab.DoesNotExist`` if the user is not a member."""
    lab = lab_list_for_user(user=request.user).get(slug=slug)
    request.session[SESSION_KEY] = lab.pk
    setattr(request, _CACHE_ATTR, lab)
    return lab
