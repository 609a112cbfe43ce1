"""django-plotly-dash's static file finders, accepting ``list(None)``.

WhiteNoise (``WHITENOISE_USE_FINDERS``) lists every finder's files with ``ignore_patterns=None``;
the library's finders add that to a list and fail, which would break every request at startup.
These subclasses change nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django_plotly_dash import finders


class DashComponentFinder(finders.DashComponentFinder):
    """dash's renderer and component bundles (dcc, html, dash_table) and plotly.js.

    dash registers its renderer's files under two components, so the library's finder lists three of
    them twice (collectstatic then warns "Found another file with the destination path"); each path
    is listed once here.
    """

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        seen: set[str] = set()
        for path, storage in super().list(list(ignore_patterns or [])):
            key = f"{getattr(storage, 'prefix', '') or ''}/{path}"
            if key not in seen:
                seen.add(key)
                yield path, storage


class DashAssetFinder(finders.DashAssetFinder):
    """``assets/`` folders beside the modules that define DjangoDash apps."""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        return super().list(list(ignore_patterns or []))


class DashAppDirectoryFinder(finders.DashAppDirectoryFinder):
    """``assets/`` folders of installed Django apps."""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        return super().list(list(ignore_patterns or []))
