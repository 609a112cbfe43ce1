"""The API tokens page: create (shown once), list, revoke."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.accounts.models import APIToken
from portal.accounts.services import api_token_authenticate, api_token_create

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_sign_in() -> None:
    assert Client().get(reverse("web:token_list")).status_code == 302


def test_create_shows_the_token_once_and_it_works(member_client, member) -> None:
    empty = member_client.get(reverse("web:token_list")).content.decode()
    assert 'id="empty-tokens"' in empty and "<title>API tokens · Labformer</title>" in empty

    created = member_client.post(reverse("web:token_list"), {"name": "laptop CLI", "expires_at": ""})
    # Redirect after POST: reloading the page that shows the secret does not create a second token.
    assert created.status_code == 302 and created.url == reverse("web:token_list")
    assert secret_url_free(created)
    response = member_client.get(created.url)
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    secret = re.search(r'id="token-secret" value="(lf_[^"]+)"', html).group(1)
    token = api_token_authenticate(raw=secret)
    assert token is not None and token.user == member and token.name == "laptop CLI"

    later = member_client.get(reverse("web:token_list")).content.decode()  # the reload
    assert secret not in later and 'id="token-secret"' not in later
    assert f"lf_{token.prefix}_" in later and "laptop CLI" in later
    assert APIToken.objects.filter(user=member).count() == 1


def secret_url_free(response) -> bool:  # noqa: ANN001
    """The redirect carries no secret in its address (it would land in access logs and history)."""
    return "lf_" not in response.url


def test_create_with_an_error_keeps_the_input(member_client) -> None:
    past = (timezone.now() - timezone.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = member_client.post(reverse("web:token_list"), {"name": "cluster sweep", "expires_at": past})
    assert response.status_code == 400
    html = response.content.decode()
    assert "future" in html.split('id="error-expires_at">')[1].split("</div>")[0]
    assert 'value="cluster sweep"' in html and f'value="{past}"' in html
    assert not APIToken.objects.exists()
    blank = member_client.post(reverse("web:token_list"), {"name": ""})
    assert blank.status_code == 400 and "required" in blank.content.decode().split('id="error-name">')[1]


def test_revoke(member_client, member) -> None:
    token, secret = api_token_create(user=member, name="old")
    response = member_client.post(reverse("web:token_revoke", args=[token.pk]))
    assert response.status_code == 302 and response.url == reverse("web:token_list")
    assert api_token_authenticate(raw=secret) is None
    html = member_client.get(reverse("web:token_list")).content.decode()
    assert "revoked" in html and f'id="token-revoke-{token.pk}"' not in html
    assert member_client.get(reverse("web:token_revoke", args=[token.pk])).status_code == 405


def test_another_users_token_cannot_be_revoked_or_seen(member_client, outsider) -> None:
    token, secret = api_token_create(user=outsider, name="theirs")
    assert "theirs" not in member_client.get(reverse("web:token_list")).content.decode()
    assert member_client.post(reverse("web:token_revoke", args=[token.pk])).status_code == 404
    assert api_token_authenticate(raw=secret) is not None
