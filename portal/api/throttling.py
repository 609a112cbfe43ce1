"""Throttling per API token (sessions per user), so one runaway script cannot starve the lab."""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request, view) -> str | None:  # noqa: ANN001
        if not request.user or not request.user.is_authenticated:
            return None  # anonymous requests are refused by authentication anyway
        auth = request.auth
        ident = f"token-{auth.pk}" if auth is not None and hasattr(auth, "prefix") else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
