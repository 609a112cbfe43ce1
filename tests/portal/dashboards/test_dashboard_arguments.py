"""A page's dashboard arguments survive a slow Dash callback from the previous page.

The browser test found it: catalog → Compare, while a callback of the catalog's (or a job page's
live curves, refreshed every 3 s) was still running. django-plotly-dash's update view writes the
session back after every callback, so when the arguments lived in the session, that callback saved
the session it had loaded before the Compare page stored its arguments, and the Compare iframe got
a 404. Here the interleaving is reproduced without a browser: the callback's request loads the
session, the next page is served in full, then the callback runs through the real view and
Django's session middleware saves (or not) what it holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.cache import cache
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import resolve, reverse

from portal.accounts.models import Visibility
from portal.dashboards import training_curves as tc
from portal.dashboards.access import OWNER_KEY, dashboard_view
from portal.jobs.models import Job
from portal.web.labs import SESSION_KEY as LAB_SESSION_KEY
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.factories import JobFactory, MembershipFactory

pytestmark = pytest.mark.django_db

EMBEDDED = re.compile(r'src="(/django_plotly_dash/app/([^/"]+)/initial/([^/"]+)/)"')


def _embeddings(page) -> list[tuple[str, str, str]]:
    assert page.status_code == 200, page.status_code
    found = EMBEDDED.findall(page.content.decode())
    assert found, "the page embeds no dashboard"
    return found


def _slow_callback_start(client, user, url: str):
    """A Dash callback's request that has loaded its session (as a request does when it starts)
    but not yet run: returns a function that runs it now and lets the session middleware finish."""
    body = {
        "output": ".." + "...".join(f"{tc.LOSS_GRAPH}.figure {tc.METRIC_GRAPH}.figure {tc.STATUS_ID}.children "
                                     f"{tc.TICK_ID}.disabled".split()) + "..",
        "outputs": [
            {"id": tc.LOSS_GRAPH, "property": "figure"},
            {"id": tc.METRIC_GRAPH, "property": "figure"},
            {"id": tc.STATUS_ID, "property": "children"},
            {"id": tc.TICK_ID, "property": "disabled"},
        ],
        "inputs": [{"id": "store", "property": "data", "value": None}, {"id": tc.TICK_ID, "property": "n_intervals", "value": 7}],
        "state": [],
        "changedPropIds": [f"{tc.TICK_ID}.n_intervals"],
    }
    request = RequestFactory().post(url, data=json.dumps(body), content_type="application/json")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    middleware = SessionMiddleware(lambda r: None)
    middleware.process_request(request)
    stale = dict(request.session.items())  # loaded now, before the next page
    request.user = user
    match = resolve(url)

    def finish():
        response = match.func(request, *match.args, **match.kwargs)
        return middleware.process_response(request, response), stale

    return finish


def test_the_next_pages_dashboard_loads_after_a_slow_callback_of_the_previous_page(client):
    member = MembershipFactory()
    running = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.RUNNING, visibility=Visibility.PRIVATE)
    done = [JobFactory(owner=member.user, lab=member.lab, status=Job.Status.SUCCEEDED) for _ in range(2)]
    client.force_login(member.user)

    # Page A: the running job's page, whose live curves call back every few seconds.
    (url_a, app_a, _id_a), *_ = _embeddings(client.get(reverse("web:job_detail", args=[running.pk])))
    assert app_a == tc.APP_NAME
    finish_callback = _slow_callback_start(client, member.user, url_a + "_dash-update-component")

    # Meanwhile the user goes on to Compare (page B), and another request stores the chosen lab.
    compare = client.get(reverse("web:compare"), {"jobs": ",".join(str(job.pk) for job in done)})
    (url_b, app_b, id_b), *_ = _embeddings(compare)
    assert app_b == "comparison"
    session = client.session
    session[LAB_SESSION_KEY] = member.lab.pk
    session.save()

    # The old callback ends now, with the session it loaded before page B: its answer is the
    # curves' refresh, and nothing of page B's or the lab choice is lost.
    response, stale = finish_callback()
    assert response.status_code == 200, response.content[:300]
    assert tc.LOSS_GRAPH in json.loads(response.content)["response"]
    assert client.get(url_b).status_code == 200
    layout = dash.layout(client, app_b, cache_id=id_b)
    assert layout.status_code == 200
    assert dash.store_of_layout(layout.json()) == {"job_ids": [job.pk for job in done]}
    # Page A's own embedding keeps working too.
    assert dash.layout(client, app_a, cache_id=_id_a).status_code == 200
    assert LAB_SESSION_KEY not in stale
    assert client.session.get(LAB_SESSION_KEY) == member.lab.pk


def test_arguments_live_in_the_shared_cache_bound_to_their_user_for_a_day(client):
    member = MembershipFactory()
    job = JobFactory(owner=member.user, lab=member.lab, status=Job.Status.RUNNING)
    client.force_login(member.user)
    (url, app, cache_id), *_ = _embeddings(client.get(reverse("web:job_detail", args=[job.pk])))

    assert not [key for key in client.session.keys() if key.startswith("dpd-initial-args-")]
    stored = cache.get(cache_id)
    assert stored[OWNER_KEY] == member.user.pk and stored["store"] == {"data": {"job_id": job.pk}}
    assert settings.PLOTLY_DASH["cache_arguments"] is True
    assert settings.PLOTLY_DASH["cache_timeout_initial_arguments"] >= 24 * 3600

    # Another process (a second web worker) reads the same cache.
    code = f"import django; django.setup(); from django.core.cache import cache; print(cache.get({cache_id!r}))"
    other = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.config.settings_test"})
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == str(stored)

    # Arguments without an owner (not rendered through {% dashboard_args %}) or expired: a 404.
    cache.set(cache_id, {key: value for key, value in stored.items() if key != OWNER_KEY}, 60)
    assert dash.layout(client, app, cache_id=cache_id).status_code == 404
    cache.delete(cache_id)
    assert dash.layout(client, app, cache_id=cache_id).status_code == 404
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("writes", [False, True])
def test_a_callback_that_changes_the_session_still_saves_it(client, writes):
    """Only an unchanged session is left unsaved: what a callback itself writes is kept."""
    member = MembershipFactory()
    client.force_login(member.user)

    def callback(request, **kwargs):
        if writes:
            request.session["written-by-callback"] = 1
        request.session["django_plotly_dash"] = request.session.get("django_plotly_dash", {})  # as the library does
        return HttpResponse("ok")

    view = dashboard_view(callback)
    request = RequestFactory().post("/django_plotly_dash/app/x/_dash-update-component", data="{}", content_type="application/json")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    middleware = SessionMiddleware(lambda r: None)
    middleware.process_request(request)
    assert LAB_SESSION_KEY not in dict(request.session.items())  # loaded now, as the callback starts
    request.user = member.user
    session = client.session
    session[LAB_SESSION_KEY] = member.lab.pk  # stored by another request meanwhile
    session.save()
    middleware.process_response(request, view(request, ident=tc.APP_NAME, stateless=True))
    assert client.session.get("written-by-callback") == (1 if writes else None)
    # A callback that wrote leaves the session as it loaded it plus its own change (Django's
    # sessions are whole-record); one that did not leaves the other request's change alone.
    assert (client.session.get(LAB_SESSION_KEY) is None) is writes


def test_the_file_cache_drops_expired_entries_before_live_ones(tmp_path):
    """The embedded default's shared cache (no CACHE_URL): when full, it removes expired entries
    first, so a page's live arguments are not culled at random; still bounded when all are live."""
    from portal.config.cache import ExpiringFileCache

    files = ExpiringFileCache(str(tmp_path), {"OPTIONS": {"MAX_ENTRIES": 3}})
    files.set("live-1", {"a": 1}, 300)
    files.set("gone-1", {"b": 1}, 0)  # a timeout of 0 expires at once
    files.set("gone-2", {"b": 2}, 0)
    files.set("live-2", {"a": 2}, 300)  # full: the expired two go, the live one stays
    assert len(list(tmp_path.iterdir())) == 2
    assert files.get("live-1") == {"a": 1} and files.get("live-2") == {"a": 2}
    files.set("live-3", {"a": 3}, 300)
    files.set("live-4", {"a": 4}, 300)  # full of live entries: culled at random, as Django does
    assert len(list(tmp_path.iterdir())) <= 3
    assert files.get("live-4") == {"a": 4}
