"""The dashboards app: importing every module of the package registers its DjangoDash app."""

import importlib
import pkgutil

from django.apps import AppConfig

# Modules of the package that are not dashboards.
NOT_DASHBOARDS = {"access", "apps", "common", "finders", "migrations", "templatetags"}


def dashboard_module_names() -> list[str]:
    """Dotted names of the dashboard modules (one DjangoDash app each), sorted."""
    from portal import dashboards

    return sorted(
        f"{dashboards.__name__}.{info.name}"
        for info in pkgutil.iter_modules(dashboards.__path__)
        if info.name not in NOT_DASHBOARDS and not info.name.startswith("_")
    )


class DashboardsConfig(AppConfig):
    name = "portal.dashboards"
    label = "dashboards"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A DjangoDash app is found by name only once its module has run; the page that embeds it,
        # or a direct call to its endpoints, may come first in a fresh process.
        for name in dashboard_module_names():
            importlib.import_module(name)
