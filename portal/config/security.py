"""The Content-Security-Policy header on every response (Django 5.2 has no CSP of its own).

The policy is settings.CONTENT_SECURITY_POLICY (default DEFAULT_CSP in settings.py). Everything the portal serves comes from its own origin (no CDN: labs run behind firewalls), so the
policy allows only 'self' for scripts, styles, images, fonts, fetches and frames, and nothing may
frame the portal but itself. Three allowances, all for the Dash dashboards (django-plotly-dash
iframes): inline scripts (Dash boots its renderer with an inline <script>, and a few of our pages
carry small inline scripts), 'unsafe-eval' (plotly.js draws WebGL plots, the embedding explorer's
and the evaluation's scatter plots, with regl, which compiles its shaders' glue code with
`new Function`), and inline styles (plotly.js styles its graphs inline); `data:` and `blob:`
images are plotly's "download as PNG". Without a CDN, an injected script still cannot load
code from, or send data to, another origin (connect-src, img-src, form-action are 'self').
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Sends settings.CONTENT_SECURITY_POLICY (Report-Only with CONTENT_SECURITY_POLICY_REPORT_ONLY)
    unless the view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY
        self.header = ("Content-Security-Policy-Report-Only" if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
                       else "Content-Security-Policy")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and self.header not in response:
            response[self.header] = self.policy
        return response
