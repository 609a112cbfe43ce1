"""Per-token throttling: the rate holds in every window, tokens are counted apart, and what is stored stays
small whatever the request rate (DRF's own throttle stores a timestamp per request)."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from portal.accounts.models import APIToken, Membership
from portal.accounts.services import api_token_create
from portal.api.throttling import TokenRateThrottle
from tests.portal.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's clock (DRF's `timer` hook), moved by the test."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(TokenRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def _client(member: Membership) -> tuple[APIToken, APIClient]:
    token, secret = api_token_create(user=member.user, name="script")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return token, client


def test_rate_per_token_with_retry_after(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> None:
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "3/min"})
    member = MembershipFactory(role=Membership.Role.MEMBER)
    _, client = _client(member)
    _, other = _client(member)
    for _ in range(3):
        assert client.get("/api/v1/profiles/").status_code == 200
        clock[0] += 10
    refused = client.get("/api/v1/profiles/")  # 30 s after the first of three: full
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "throttled"
    assert int(refused["Retry-After"]) == 31  # the first request's second leaves the window then
    assert other.get("/api/v1/profiles/").status_code == 200  # another token has its own count
    clock[0] += 30.5
    # 60.5 s after the first request: an exact log would let one more through; the first request's
    # one-second slot is counted until its end leaves the window (at most one slot stricter).
    assert client.get("/api/v1/profiles/").status_code == 429
    clock[0] += 1
    assert client.get("/api/v1/profiles/").status_code == 200
    assert client.get("/api/v1/profiles/").status_code == 429  # the other two still are


def test_never_more_than_the_rate_in_any_window(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> None:
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "10/min"})
    _, client = _client(MembershipFactory(role=Membership.Role.MEMBER))
    allowed = []
    for _ in range(150):  # one request every 1.7 s for more than 4 minutes
        if client.get("/api/v1/profiles/").status_code == 200:
            allowed.append(clock[0])
        clock[0] += 1.7
    assert all(b - a >= 60 for a, b in zip(allowed, allowed[10:]))  # 11 allowed always span a minute or more
    assert len(allowed) >= 4 * 10  # and the throttle does not starve the token either


def test_stored_state_stays_small_at_any_rate(monkeypatch: pytest.MonkeyPatch, clock: list[float]) -> None:
    monkeypatch.setattr(TokenRateThrottle, "THROTTLE_RATES", {"token": "100000/min"})
    token, client = _client(MembershipFactory(role=Membership.Role.MEMBER))
    for _ in range(300):  # 300 requests over 150 s
        assert client.get("/api/v1/profiles/").status_code == 200
        clock[0] += 0.5
    stored = cache.get(TokenRateThrottle.cache_format % {"scope": "token", "ident": f"token-{token.pk}"})
    assert len(stored) <= TokenRateThrottle.SLOTS + 1
    assert sum(stored.values()) == 2 * (TokenRateThrottle.SLOTS + 1)  # two a second in the slots still counted
