"""Fixtures of the page tests: two labs with a member each, signed-in clients."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.accounts.models import Membership
from tests.portal.factories import LabFactory, MembershipFactory


@pytest.fixture
def lab():
    return LabFactory(name="Alpha lab", slug="alpha")


@pytest.fixture
def other_lab():
    return LabFactory(name="Beta lab", slug="beta")


@pytest.fixture
def member(lab):
    return MembershipFactory(lab=lab, role=Membership.Role.MEMBER).user


@pytest.fixture
def outsider(other_lab):
    return MembershipFactory(lab=other_lab, role=Membership.Role.MEMBER).user


@pytest.fixture
def member_client(member) -> Client:
    client = Client()
    client.force_login(member)
    return client


@pytest.fixture
def outsider_client(outsider) -> Client:
    client = Client()
    client.force_login(outsider)
    return client
