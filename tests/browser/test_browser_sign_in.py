"""Signing in and out in a real browser: the login form, the user's name in the top bar, sign out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_browser_sign_in_wrong_password_then_in_and_out(page, member, sign_in, shot) -> None:  # noqa: ANN001
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))  # the home page needs a signed-in user
    page.get_by_label("Username").fill(member.user.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
    expect(page.get_by_label("Username")).to_have_value(member.user.username)  # kept after the error

    sign_in(page, member.user)
    expect(page.locator("#nav-user")).to_have_text(member.user.username)
    expect(page.locator("#current-lab")).to_have_text(member.lab.name)
    shot("portal-00-signed-in")
    page.locator("#nav-signout").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    expect(page.locator("#nav-user")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))  # signed out for real
