"""Shared fixtures. The portal tests run against PostgreSQL (``make test`` points DATABASE_URL at it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep files written by a test out of var/: each test gets its own media folder."""
    if "settings" not in request.fixturenames and not request.node.get_closest_marker("django_db"):
        return
    settings = request.getfixturevalue("settings")
    media = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = media
    settings.LABFORMER_UPLOAD_STAGING = media / "staging"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": media}},
        # Pages render without a collectstatic run in tests.
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(scope="session", autouse=True)
def _require_postgres(request: pytest.FixtureRequest) -> None:
    """Refuse to run database tests on SQLite: the race and locking tests only mean something on PostgreSQL."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    wants_db = any(item.get_closest_marker("django_db") for item in request.session.items)
    if wants_db and "postgresql" not in engine:
        pytest.exit(
            f"the portal tests need PostgreSQL, but DATABASE_URL gives {engine}; run `make test` "
            "or set DATABASE_URL=postgres://postgres@127.0.0.1:5432/labformer",
            returncode=2,
        )
