"""Writes about labs and memberships."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.text import slugify

from portal.accounts.models import Lab, Membership


@transaction.atomic
def lab_create(*, name: str, owner: AbstractBaseUser, slug: str | None = None) -> Lab:
    """Create a lab with ``owner`` as its first member (role owner)."""
    lab = Lab.objects.create(name=name, slug=slug or slugify(name))
    Membership.objects.create(user=owner, lab=lab, role=Membership.Role.OWNER)
    return lab


def membership_set(*, lab: Lab, user: AbstractBaseUser, role: str) -> Membership:
    """Add ``user`` to ``lab`` with ``role``, or change the role of an existing member."""
    if role not in Membership.Role.values:
        raise ValueError(f"role {role!r}: expected one of {', '.join(Membership.Role.values)}")
    membership, _ = Membership.objects.update_or_create(user=user, lab=lab, defaults={"role": role})
    return membership
