"""API tokens served from the shared cache: no query while nothing changed, and every change (revocation,
expiry, a deactivated or deleted user, a deleted token) refused on the very next request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from portal.accounts.models import APIToken, Membership
from portal.accounts.services import api_token_create, api_token_revoke
from portal.api import token_cache
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def member() -> Membership:
    return MembershipFactory(role=Membership.Role.MEMBER)


def _bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _warm(member: Membership, **kw) -> tuple[APIToken, str, APIClient]:  # noqa: ANN003
    """A token that has just been checked once, so that its next request is answered from the cache."""
    token, secret = api_token_create(user=member.user, name="script", **kw)
    client = _bearer(secret)
    assert client.get("/api/v1/profiles/").status_code == 200
    return token, secret, client


def _token_queries(client: APIClient, url: str = "/api/v1/profiles/") -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        status = client.get(url).status_code
    return status, [q["sql"] for q in ctx.captured_queries if "accounts_apitoken" in q["sql"]]


def test_cached_token_needs_no_query_and_keeps_its_user(member: Membership) -> None:
    token, _, client = _warm(member)
    status, queries = _token_queries(client)
    assert status == 200 and queries == []
    listed = client.get("/api/v1/tokens/").json()  # request.user from the cache is the real user
    assert [t["id"] for t in listed] == [token.pk]
    entry = cache.get(token_cache._entry_key(token.prefix))
    assert "secret_hash" not in entry["token"] and "password" not in entry["user"]


def test_revoked_token_is_refused_on_the_next_request(member: Membership) -> None:
    token, _, client = _warm(member)
    api_token_revoke(user=member.user, token_id=token.pk)
    refused = client.get("/api/v1/profiles/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"


def test_revoked_through_the_api_while_cached(member: Membership) -> None:
    token, _, client = _warm(member)
    assert client.post(f"/api/v1/tokens/{token.pk}/revoke/").status_code == 200
    assert client.get("/api/v1/profiles/").status_code == 401


def test_token_expiring_while_cached_is_refused(member: Membership) -> None:
    token, _, client = _warm(member, expires_at=timezone.now() + timedelta(seconds=1.5))
    assert _token_queries(client) == (200, [])  # answered from the cache
    # the cached entry outlives the token: once the clock passes the expiry, the token is refused
    wait_for(lambda: client.get("/api/v1/profiles/").status_code == 401, 10, "the cached token to expire")
    assert timezone.now() >= token.expires_at


def test_expiry_moved_earlier_is_refused_at_once(member: Membership) -> None:
    token, _, client = _warm(member, expires_at=timezone.now() + timedelta(days=30))
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save(update_fields=["expires_at"])
    assert client.get("/api/v1/profiles/").status_code == 401


def test_deactivated_or_deleted_user_and_deleted_token_are_refused(member: Membership) -> None:
    _, _, client = _warm(member)
    member.user.is_active = False
    member.user.save(update_fields=["is_active"])
    assert client.get("/api/v1/profiles/").status_code == 401

    other = MembershipFactory(role=Membership.Role.MEMBER)
    token, _, client = _warm(other)
    token.delete()
    assert client.get("/api/v1/profiles/").status_code == 401

    third = MembershipFactory(role=Membership.Role.MEMBER)
    _, _, client = _warm(third)
    third.user.delete()
    assert client.get("/api/v1/profiles/").status_code == 401


def test_an_entry_read_before_a_revocation_and_stored_after_it_is_not_trusted(member: Membership) -> None:
    """The interleaving the change marks exist for: a request reads the live token from the database,
    the token is revoked, then that request stores what it read."""
    token, _, client = _warm(member)
    entry = cache.get(token_cache._entry_key(token.prefix))
    api_token_revoke(user=member.user, token_id=token.pk)
    cache.set(token_cache._entry_key(token.prefix), entry, token_cache.ENTRY_SECONDS)  # the late write
    assert client.get("/api/v1/profiles/").status_code == 401


def test_cached_prefix_with_another_secret_is_refused(member: Membership) -> None:
    token, secret, _ = _warm(member)
    forged = f"lf_{token.prefix}_{'x' * len(secret.split('_', 2)[2])}"
    assert _bearer(forged).get("/api/v1/profiles/").status_code == 401
    assert _bearer(secret).get("/api/v1/profiles/").status_code == 200
