"""Fixtures for the browser tests: Playwright's sync API driving Debian's Chromium (/usr/bin/chromium,
headless; `make test` installs it through scripts/ensure-services.sh, never `playwright install`)
against pytest-django's `live_server` and a REAL Celery worker process (the fixtures of
tests/workers/conftest.py, shared with the client tests).

- `browser`: one Chromium per test module.
- `page`: a fresh browser context per test at laptop width. Every request that leaves the live
  server is refused and recorded, and so is every uncaught JavaScript error: the test fails on either
  (the portal runs behind lab firewalls, nothing may come from a CDN).
- `sign_in(page, user)`: signs in through the login form.
- `shot(name)`: a full-page screenshot at test-results/<name>.png (repo root, created if missing).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from portal.accounts.models import Membership
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import broker, start_worker, worker_env  # noqa: F401 - fixtures reused

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "test-results"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
PASSWORD = "pw-for-tests"  # tests/portal/factories.py UserFactory's password
LAPTOP = {"width": 1366, "height": 900}
# Waits in the browser tests: Playwright's `expect` polls until the condition holds or this passes.
UI_TIMEOUT_MS = 15_000
expect.set_options(timeout=UI_TIMEOUT_MS)
# A Dash iframe loads its renderer and plotly.js and runs its callbacks on the live server: a page with
# several dashboards takes a while on a busy two-core machine.
DASH_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    # Playwright's sync API keeps an asyncio event loop on this thread, and Django refuses ORM calls
    # from a thread with a running loop (SynchronousOnlyOperation). The tests' own ORM calls (factories,
    # polling the database, pytest-django's flush at teardown) are synchronous code that merely shares
    # the thread with Playwright's loop, so the check is lifted, for the browser modules only
    # (https://docs.djangoproject.com/en/5.2/topics/async/#envvar-DJANGO_ALLOW_ASYNC_UNSAFE;
    # microsoft/playwright-python#439). The live server answers requests on its own threads.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as pw:
            yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium) "
                    "or `apt-get install -y chromium`")
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class PageWatch:
    """What a page did that a test must not let pass: requests off the live server, uncaught errors."""

    origin: str
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [f"request off the live server (CDN?): {url}" for url in self.external] + [
            f"uncaught JavaScript error: {error}" for error in self.errors]


@pytest.fixture
def page(browser: Browser, live_server, request: pytest.FixtureRequest) -> Iterator[Page]:  # noqa: ANN001
    context: BrowserContext = browser.new_context(viewport=LAPTOP, base_url=live_server.url, accept_downloads=True)
    context.set_default_timeout(UI_TIMEOUT_MS)
    watch = PageWatch(origin=live_server.url)
    live = urlsplit(live_server.url)

    def _route(route) -> None:  # noqa: ANN001
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and (url.hostname, url.port) != (live.hostname, live.port):
            watch.external.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", _route)
    context.on("page", lambda p: p.on("pageerror", lambda exc: watch.errors.append(f"{p.url}: {exc}")))
    tab = context.new_page()
    tab.watch = watch  # type: ignore[attr-defined]
    yield tab
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    if failed:
        RESULTS.joinpath("failures").mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
        try:
            tab.screenshot(path=str(RESULTS / "failures" / f"{name}.png"), full_page=True)
        except Exception:  # noqa: BLE001 - the page may be gone; the test's own failure is what matters
            pass
    context.close()
    # A kept-alive connection held in a reference cycle keeps a live-server thread and its database
    # connection; the test database could then not be dropped at the end of the session.
    gc.collect()
    if not failed and watch.problems():
        pytest.fail("\n".join(watch.problems()))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    """Keep each phase's report on the test item, so `page` can screenshot a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def shot(page: Page) -> Callable[..., Path]:
    """shot(name, target=None): a full-page screenshot of `page` (or of `target`, a page or locator)
    saved as test-results/<name>.png; returns the path."""

    def _shot(name: str, target=None) -> Path:  # noqa: ANN001
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{name}.png"
        if target is None:
            page.screenshot(path=str(path), full_page=True)
        else:
            target.screenshot(path=str(path))
        assert path.stat().st_size > 0, path
        return path

    return _shot


@pytest.fixture
def member() -> Membership:
    """A lab owner to sign in as (password: PASSWORD)."""
    return MembershipFactory(role=Membership.Role.OWNER)


@pytest.fixture
def sign_in() -> Callable[[Page, object], None]:
    """sign_in(page, user): through the login form, as a researcher would; lands on the home page."""

    def _sign_in(page: Page, user) -> None:  # noqa: ANN001
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    return _sign_in


# -- Dash dashboards (django-plotly-dash iframes) ------------------------------------------------------

# A summary of a rendered Plotly figure, read from the graph div's drawn traces (what is drawn, after
# Dash's callbacks): per trace its type, name, number of points and the drawn values flattened (heatmap
# `z` rows, `y`, a horizontal bar's `x`, a pie's `values`, parallel coordinates' first dimension), so a
# test can tell an empty figure from one with data and one state from another.
_FIGURE_JS = """graph => {
  const plot = graph.classList.contains('js-plotly-plot') ? graph : graph.querySelector('.js-plotly-plot');
  // _fullData: the traces as plotly.js drew them (typed arrays sent base64-encoded are decoded there).
  const traces = plot && (plot._fullData || plot.data);
  if (!traces) return null;
  const isList = x => x != null && typeof x === 'object' && x.length !== undefined;
  const flat = v => v == null ? [] : Array.from(v).flatMap(x => isList(x) ? Array.from(x) : [x]);
  return traces.map(t => {
    const along = t.orientation === 'h' ? t.x : t.y;  // a horizontal bar's values are its x
    const raw = t.z !== undefined ? t.z : along !== undefined ? along : t.values !== undefined ? t.values
      : (t.dimensions && t.dimensions.length ? t.dimensions[0].values : undefined);
    const values = flat(raw).map(Number);
    const n = values.filter(v => Number.isFinite(v)).length;
    return {type: t.type || 'scatter', name: t.name || '', points: n, values: values.slice(0, 5000)};
  });
}"""


def dashboard(page: Page, name: str):  # noqa: ANN201
    """The FrameLocator of the dashboard `name` embedded in the page (its section's data-dashboard)."""
    return page.frame_locator(f"[data-dashboard='{name}'] iframe")


def figure(frame, graph_id: str) -> list[dict] | None:  # noqa: ANN001
    """The traces drawn in the dcc.Graph `graph_id` of a dashboard frame (see _FIGURE_JS)."""
    return frame.locator(f"#{graph_id}").evaluate(_FIGURE_JS)


def wait_for_figure(frame, graph_id: str, predicate: Callable[[list[dict]], bool] | None = None,  # noqa: ANN001
                    timeout_ms: int = DASH_TIMEOUT_MS, what: str = "") -> list[dict]:
    """Poll the graph until it has drawn data (at least one trace with points) and `predicate` holds."""
    frame.locator(f"#{graph_id} .main-svg").first.wait_for(state="attached", timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    last: list[dict] | None = None
    while True:
        try:
            last = figure(frame, graph_id)
        except PlaywrightError:  # the frame is reloading
            last = None
        if last and any(t["points"] for t in last) and (predicate is None or predicate(last)):
            return last
        if time.monotonic() > deadline:
            summary = [(t["type"], t["name"], t["points"]) for t in last] if last else last
            raise AssertionError(f"graph #{graph_id} {what or 'has no data'} after {timeout_ms} ms; drawn: {summary}")
        frame.owner.page.wait_for_timeout(200)  # the poll interval
