"""Personal API tokens: `Authorization: Bearer lf_<prefix>_<secret>` (or `Token ...`).

Checked by accounts.services.api_token_authenticate through a short-lived cache (token_cache.py).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from portal.api.token_cache import token_authenticate_cached


class APITokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):  # noqa: ANN001, ANN201 - DRF's signature
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("malformed Authorization header: expected 'Bearer <token>'")
        token = token_authenticate_cached(raw=header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed("invalid, expired or revoked API token")
        return token.user, token

    def authenticate_header(self, request) -> str:  # noqa: ANN001
        return 'Bearer realm="api"'


class APITokenScheme(OpenApiAuthenticationExtension):
    target_class = APITokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema):  # noqa: ANN001, ANN201
        return {"type": "http", "scheme": "bearer", "description": "A personal API token: lf_<prefix>_<secret>"}
