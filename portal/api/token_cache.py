"""API tokens that passed the database check, remembered for a minute in the shared cache.

``accounts.services.api_token_authenticate`` checks a token in the database (the secret's hash,
expiry, revocation, an active user): a query that was a tenth of a job list request's CPU in
bench/api.py. A token that passed is kept here under its prefix for ENTRY_SECONDS, with a digest of
the whole raw token (only the same raw token can use the entry), its expiry and the user's fields.
Neither the secret's hash nor the user's password hash is kept.

What keeps it correct:
- Expiry is checked against the clock on every request, as the service does.
- Every save() or delete() of a token or of a user (revocation, a changed expiry, a deactivated or
  deleted user) deletes that token's entries and leaves a "changed" mark, at once and again when
  the transaction commits: an entry read from the database before the mark is never trusted, so a
  request that read the token just before the change and stores it just after cannot bring the
  old state back. The services change tokens and users through save(); a bulk QuerySet.update()
  sends no signal and must call ``token_cache_forget`` itself.
- The last_used_at write stays the service's: it runs on each miss, so at least once per
  ENTRY_SECONDS while the token is used (the service writes at most once a minute anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from portal.accounts.models import APIToken
from portal.accounts.services import api_token_authenticate

ENTRY_SECONDS = 60
# An entry is only stored if the database answered within this many seconds, so no entry outlives
# the mark of a change made after its read (marks live MARK_SECONDS).
MAX_READ_SECONDS = 5
MARK_SECONDS = 3 * ENTRY_SECONDS
# Entries read less than this before a mark are distrusted too (clocks of several web machines).
CLOCK_SKEW_SECONDS = 1.0
_TOKEN_SKIP = frozenset({"secret_hash"})
_USER_SKIP = frozenset({"password"})


def _entry_key(prefix: str) -> str:
    return f"api-token:{prefix}"


def _mark_key(prefix: str) -> str:
    return f"api-token-changed:{prefix}"


def _fields(instance: Model, skip: frozenset[str]) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields if f.attname not in skip}


def token_authenticate_cached(*, raw: str) -> APIToken | None:
    """The live token for ``raw`` with its user, as ``api_token_authenticate`` answers, mostly from the cache."""
    parts = raw.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "lf":
        return None
    prefix = parts[1]
    digest = hashlib.sha256(raw.encode()).hexdigest()
    entry = cache.get(_entry_key(prefix))
    if isinstance(entry, dict) and hmac.compare_digest(entry["digest"], digest):
        mark = cache.get(_mark_key(prefix))
        expires_at = entry["token"]["expires_at"]
        if ((mark is None or entry["read_at"] > mark + CLOCK_SKEW_SECONDS)
                and (expires_at is None or expires_at > timezone.now())):
            token = APIToken.from_db(entry["db"], list(entry["token"]), list(entry["token"].values()))
            token.user = get_user_model().from_db(entry["db"], list(entry["user"]), list(entry["user"].values()))
            return token
    read_at = time.time()
    token = api_token_authenticate(raw=raw)
    if token is not None and time.time() - read_at < MAX_READ_SECONDS:
        cache.set(_entry_key(prefix), {"digest": digest, "read_at": read_at, "db": token._state.db,
                                       "token": _fields(token, _TOKEN_SKIP), "user": _fields(token.user, _USER_SKIP)},
                  ENTRY_SECONDS)
    return token


def token_cache_forget(*, prefixes: Iterable[str]) -> None:
    """Drop what is cached for these tokens and mark them changed, now and when the transaction commits."""
    prefixes = list(prefixes)
    if not prefixes:
        return

    def forget() -> None:
        now = time.time()
        cache.delete_many([_entry_key(p) for p in prefixes])
        cache.set_many({_mark_key(p): now for p in prefixes}, MARK_SECONDS)

    forget()
    transaction.on_commit(forget)


def _token_changed(sender: type, instance: APIToken, created: bool = False, **kwargs: object) -> None:
    if not created:
        token_cache_forget(prefixes=[instance.prefix])


def _user_changed(sender: type, instance: Model, created: bool = False, **kwargs: object) -> None:
    if not created:
        token_cache_forget(prefixes=APIToken.objects.filter(user_id=instance.pk).values_list("prefix", flat=True))


def connect_signals() -> None:
    """Called from the app's ready(): every process that can change tokens or users forgets them."""
    from django.db.models.signals import post_delete, post_save

    user_model = get_user_model()
    post_save.connect(_token_changed, sender=APIToken, dispatch_uid="api-token-cache-token-saved")
    post_delete.connect(_token_changed, sender=APIToken, dispatch_uid="api-token-cache-token-deleted")
    post_save.connect(_user_changed, sender=user_model, dispatch_uid="api-token-cache-user-saved")
    post_delete.connect(_user_changed, sender=user_model, dispatch_uid="api-token-cache-user-deleted")
