"""Catalog keys (tasks, profiles, modalities) as the portal offers and checks them.

The keys live in ``mlcore.catalog`` only; no model field or migration freezes them. Forms, API
serializers and filters take their choices from the functions below, which read the catalog each
time they are called (a task registered in the catalog is offered at once, without a migration);
services check a key with ``catalog_key_check``, whose error names the bad key and the valid ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlcore import catalog
from portal.common.errors import ServiceError


def task_choices() -> list[tuple[str, str]]:
    """(key, label) of every task in the catalog, in catalog order."""
    return [(t.key, t.label) for t in catalog.TASKS.values()]


def profile_choices() -> list[tuple[str, str]]:
    """(key, label) of every optimization profile in the catalog."""
    return [(p.key, p.label) for p in catalog.PROFILES.values()]


def modality_choices() -> list[tuple[str, str]]:
    """(key, label) of every modality in the catalog."""
    return [(m.key, m.label) for m in catalog.MODALITIES.values()]


def domain_choices() -> list[tuple[str, str]]:
    """The tasks' domains, each once, in catalog order."""
    return [(d, d) for d in dict.fromkeys(t.domain for t in catalog.TASKS.values())]


def catalog_key_message(*, what: str, key: Any, valid: Mapping[str, Any]) -> str:
    """``unknown task 'x'; valid tasks: a, b, c``."""
    plural = f"{what[:-1]}ies" if what.endswith("y") else f"{what}s"
    return f"unknown {what} {key!r}; valid {plural}: {', '.join(str(k) for k in valid)}"


def catalog_key_check(*, what: str, key: Any, valid: Mapping[str, Any], field: str) -> None:
    """A ServiceError on ``field`` naming ``key`` and the valid keys when ``key`` is not in ``valid``."""
    if not isinstance(key, str) or key not in valid:
        raise ServiceError(catalog_key_message(what=what, key=key, valid=valid), field=field, code="invalid")
