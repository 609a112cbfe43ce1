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
    """dash's renderer and component bundles (dcc, html, dash_table) and plotly.js."""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        return super().list(list(ignore_patterns or []))


class DashAssetFinder(finders.DashAssetFinder):
    """``assets/`` folders beside the modules that define DjangoDash apps."""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        return super().list(list(ignore_patterns or []))


class DashAppDirectoryFinder(finders.DashAppDirectoryFinder):
    """``assets/`` folders of installed Django apps."""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, Any]]:
        return super().list(list(ignore_patterns or []))
