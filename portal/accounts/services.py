"""Writes about labs and memberships."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.db import transaction
from django.utils.text import slugify

from portal.accounts.models import APIToken, Lab, Membership
from portal.common.errors import ServiceError


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


def api_token_create(*, user: AbstractBaseUser, name: str, expires_at: datetime | None = None) -> tuple[APIToken, str]:
    """Create a token; returns the row and the full secret, which is never stored or shown again."""
    name = name.strip()
    if not name:
        raise ServiceError("a token needs a name", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError("the expiry must be in the future", field="expires_at")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = APIToken.objects.create(
        user=user, name=name, prefix=prefix, secret_hash=_token_hash(secret), expires_at=expires_at
    )
    return token, f"lf_{prefix}_{secret}"


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> APIToken:
    token = APIToken.objects.get(pk=token_id, user=user)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw: str) -> APIToken | None:
    """The live token matching ``raw`` (not revoked, not expired), or None. Constant-time comparison."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "lf":
        return None
    token = APIToken.objects.select_related("user").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _token_hash(parts[2])):
        return None
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    # At most one write a minute per token: "last used" is for people, not an audit log.
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
