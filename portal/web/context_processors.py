"""Template context every page gets: the user's labs and the current one (for the navbar's switcher)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.accounts.selectors import lab_list_for_user
from portal.web.labs import current_lab


def labs(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    user_labs = list(lab_list_for_user(user=user).order_by("name", "pk"))
    return {"user_labs": user_labs, "current_lab": current_lab(request, among=user_labs)}
