"""Every response carries the Content-Security-Policy (portal/config/security.py): pages, the API,
and the Dash dashboards' iframes, whose inline bootstrap the policy must still allow."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.portal.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _directives(header: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("path", ["/", "/catalog/", "/datasets/", "/api/v1/tasks/", "/accounts/login/",
                                  "/django_plotly_dash/app/tradeoffs/"])
def test_every_response_has_the_content_security_policy(path: str) -> None:
    client = Client()
    client.force_login(MembershipFactory().user)
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'self'"]
    # Nothing from another origin: every source list is 'self', keywords or data:/blob:.
    for name, sources in policy.items():
        assert all(s.startswith("'") or s in ("data:", "blob:") for s in sources), (name, sources)


def test_the_policy_is_configurable(settings) -> None:  # noqa: ANN001 - pytest-django's settings fixture
    from portal.config.security import ContentSecurityPolicyMiddleware
    from django.http import HttpResponse

    settings.CONTENT_SECURITY_POLICY = "default-src 'none'"
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = True
    response = ContentSecurityPolicyMiddleware(lambda request: HttpResponse())(None)
    assert response["Content-Security-Policy-Report-Only"] == "default-src 'none'"
    assert "Content-Security-Policy" not in response
