"""The dashboards are served whole by us: the page of every registered app loads its scripts from our
own static files (no CDN), and every dashboard module has registered its app."""

from __future__ import annotations

import importlib
import re

import pytest
from django_plotly_dash import DjangoDash
from django_plotly_dash.dash_wrapper import all_apps

from portal.dashboards.apps import dashboard_module_names
from tests.portal.factories import UserFactory

pytestmark = pytest.mark.django_db


def _apps_of(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    return [value._uid for value in vars(module).values() if isinstance(value, DjangoDash)]


def test_every_dashboard_module_registers_its_app():
    names = dashboard_module_names()
    assert "portal.dashboards.training_curves" in names
    assert "portal.dashboards.common" not in names
    for name in names:
        apps = _apps_of(name)
        assert apps, f"{name} defines no DjangoDash app"
        assert all(app in all_apps() for app in apps)


@pytest.mark.parametrize("app_name", [app for name in dashboard_module_names() for app in _apps_of(name)])
def test_dashboard_page_loads_only_local_assets(client, app_name):
    client.force_login(UserFactory())
    page = client.get(f"/django_plotly_dash/app/{app_name}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert ".lf-figure-tools" in html  # the house CSS of DashboardApp's page
    sources = re.findall(r'<script[^>]+src="([^"]+)"', html) + re.findall(r'<link[^>]+href="([^"]+)"', html)
    assert sources, html[:500]
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))]
    for source in sources:
        response = client.get(source, follow=True)
        assert response.status_code == 200, source
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert len(body) > 100, source


def _seconds_left(key: str) -> float:
    """How long the shared cache keeps ``key`` (Redis, or the file cache of the embedded default)."""
    import pickle
    import time

    from django.core.cache import caches
    from django.core.cache.backends.filebased import FileBasedCache

    cache = caches["default"]

    if isinstance(cache, FileBasedCache):
        with open(cache._key_to_file(key), "rb") as f:
            return pickle.load(f) - time.time()
    return cache._cache.get_client(key).ttl(cache.make_and_validate_key(key))


def test_a_used_embedding_stays_alive_and_an_unknown_one_is_a_404(client):
    """Each request of an embedding extends its lifetime (a page left open keeps working); an id
    never stored, or expired, is a 404 on every endpoint, callbacks included."""
    from django.core.cache import cache

    from tests.portal.dashboards import dashboard_client as dash
    from tests.portal.factories import DatasetFactory, MembershipFactory

    member = MembershipFactory()
    dataset = DatasetFactory(owner=member.user, lab=member.lab)
    client.force_login(member.user)
    _html, cache_id = dash.render_embedding(client, member.user, "dashboards/dataset_panels.html", {"dataset": dataset})
    cache.touch(cache_id, 5)  # nearly expired
    assert _seconds_left(cache_id) <= 5
    assert dash.layout(client, "dataset_explorer", cache_id=cache_id).status_code == 200
    assert _seconds_left(cache_id) > 23 * 3600
    for unknown in ("dpd-initial-args-0123456789abcdef", cache_id):
        cache.delete(unknown)
        assert dash.layout(client, "dataset_explorer", cache_id=unknown).status_code == 404
        update = client.post(f"{dash.BASE}/dataset_explorer/initial/{unknown}/_dash-update-component",
                             data="{}", content_type="application/json")
        assert update.status_code == 404


@pytest.mark.parametrize(
    ("template", "context_key", "apps"),
    [
        ("dashboards/job_live.html", "job", ["training_curves"]),
        ("dashboards/compare_panels.html", "jobs", ["comparison"]),
        ("dashboards/dataset_panels.html", "dataset", ["dataset_explorer", "tradeoffs"]),
        ("dashboards/catalog_panels.html", "jobs", ["tradeoffs"]),
    ],
)
def test_an_embedding_is_readable_only_by_its_own_user(client, template, context_key, apps):
    """The ids a page hands its dashboards come back only to the user who rendered the page:
    another lab's user gets 404 for the same embedding, an anonymous caller the sign-in page."""
    from portal.accounts.models import Visibility
    from tests.portal.dashboards import dashboard_client as dash
    from tests.portal.factories import JobFactory, MembershipFactory

    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, visibility=Visibility.PRIVATE)
    value = {"job": job, "jobs": [job], "dataset": job.dataset}[context_key]
    client.force_login(member.user)
    html, _ = dash.render_embedding(client, member.user, template, {context_key: value, "filters": {}})
    embedded = re.findall(r'/django_plotly_dash/app/([^/"]+)/initial/([^/"]+)/"', html)
    assert [app for app, _ in embedded] == apps
    for app, cache_id in embedded:
        layout = dash.layout(client, app, cache_id=cache_id)
        assert layout.status_code == 200 and dash.store_of_layout(layout.json())
    client.force_login(MembershipFactory().user)
    for app, cache_id in embedded:
        assert dash.layout(client, app, cache_id=cache_id).status_code == 404
        assert client.get(f"/django_plotly_dash/app/{app}/initial/{cache_id}/").status_code == 404
    client.logout()
    for app, cache_id in embedded:
        assert dash.layout(client, app, cache_id=cache_id).status_code == 302


def test_static_finders_list_each_destination_path_once():
    # collectstatic warns ("Found another file with the destination path") and keeps the first of
    # duplicates; dash registers its renderer under two components, which our finder folds into one.
    from django.contrib.staticfiles.finders import get_finders

    paths = [f"{getattr(storage, 'prefix', '') or ''}/{path}".lstrip("/")
             for finder in get_finders() for path, storage in finder.list([])]
    assert any("dash_renderer" in p for p in paths)  # the renderer is among them: this test can fail
    assert len(paths) == len(set(paths)), sorted({p for p in paths if paths.count(p) > 1})[:5]


def test_the_library_s_add_stateless_apps_view_is_for_staff_only(client):
    from django_plotly_dash.models import StatelessApp

    url = "/django_plotly_dash/add_stateless_apps"
    before = StatelessApp.objects.count()
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory())
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert StatelessApp.objects.count() == before  # nothing was written for them
    client.force_login(UserFactory(is_staff=True))
    response = client.get(url)
    assert response.status_code in (200, 302) and "/admin/login/" not in response.get("Location", "")
