"""Reads about users and labs, and the one visibility rule every object selector applies."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet

from portal.accounts.models import APIToken, Lab, Membership, Visibility


def lab_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Lab]:
    if not user.is_authenticated:
        return Lab.objects.none()
    return Lab.objects.filter(memberships__user=user).distinct()


def membership_get(*, user: AbstractBaseUser | AnonymousUser, lab: Lab) -> Membership | None:
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(user=user, lab=lab).first()


def api_token_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[APIToken]:
    """The user's own API tokens, active ones first, newest first (nobody sees another's tokens)."""
    if not user.is_authenticated:
        return APIToken.objects.none()
    return APIToken.objects.filter(user=user).order_by("revoked_at", "-created_at")


def visible_to_user_q(*, user: AbstractBaseUser | AnonymousUser) -> Q:
    """The rule for objects with owner, lab and visibility (datasets, jobs).

    The owner sees their own; members of the object's lab see ``lab`` and ``public`` ones; every
    signed-in user sees ``public`` ones; anonymous users see nothing. Everything else must look
    absent (a 404), never forbidden, so that ids of other labs' work leak nothing.
    """
    if not user.is_authenticated:
        return Q(pk__in=[])
    member_labs = Membership.objects.filter(user=user).values("lab_id")
    return (
        Q(owner=user)
        | Q(visibility__in=[Visibility.LAB, Visibility.PUBLIC], lab_id__in=member_labs)
        | Q(visibility=Visibility.PUBLIC)
    )
