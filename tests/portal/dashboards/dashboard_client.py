"""Calling a dashboard's real Dash endpoints through Django's test client, as a browser (or an
attacker with a crafted payload) would: ``_dash-layout``, ``_dash-dependencies`` and
``_dash-update-component``. Shared by the dashboard tests (not collected itself)."""

from __future__ import annotations

import json
import re
from typing import Any

from django.template import Context, Template
from django.test import Client, RequestFactory

BASE = "/django_plotly_dash/app"


def layout(client: Client, app: str, *, cache_id: str | None = None) -> Any:
    """The app's layout (a response object; ``.json()`` when 200)."""
    middle = f"/initial/{cache_id}" if cache_id else ""
    return client.get(f"{BASE}/{app}{middle}/_dash-layout")


def dependencies(client: Client, app: str) -> list[dict]:
    response = client.get(f"{BASE}/{app}/_dash-dependencies")
    assert response.status_code == 200, response.status_code
    return response.json()


def _prop(spec: str) -> tuple[str, str]:
    ident, prop = spec.rsplit(".", 1)
    return ident, prop


def _output_key(outputs: list[str]) -> str:
    return outputs[0] if len(outputs) == 1 else ".." + "...".join(outputs) + ".."


def update(
    client: Client,
    app: str,
    *,
    outputs: list[str],
    inputs: dict[str, Any],
    state: dict[str, Any] | None = None,
    changed: list[str] | None = None,
) -> Any:
    """POST ``_dash-update-component`` for the callback with ``outputs`` ("id.prop" each), giving
    ``inputs`` / ``state`` as {"id.prop": value} in the callback's own order."""
    body = {
        "output": _output_key(outputs),
        "outputs": [dict(zip(("id", "property"), _prop(o))) for o in outputs]
        if len(outputs) > 1
        else dict(zip(("id", "property"), _prop(outputs[0]))),
        "inputs": [{"id": _prop(k)[0], "property": _prop(k)[1], "value": v} for k, v in inputs.items()],
        "state": [{"id": _prop(k)[0], "property": _prop(k)[1], "value": v} for k, v in (state or {}).items()],
        "changedPropIds": changed if changed is not None else list(inputs)[:1],
    }
    return client.post(f"{BASE}/{app}/_dash-update-component", data=json.dumps(body), content_type="application/json")


def response_props(response: Any) -> dict[str, dict[str, Any]]:
    """{component id: {property: value}} from a 200 update response."""
    assert response.status_code == 200, (response.status_code, response.content[:300])
    return json.loads(response.content)["response"]


def payload_text(response: Any) -> str:
    """A response's JSON as text without Plotly's layout templates (their colour scales are full of
    numbers), for checking that a value does or does not appear anywhere else in the response."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "template"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    try:
        return json.dumps(strip(json.loads(response.content)))
    except ValueError:
        return response.content.decode(errors="replace")


def store_of_layout(layout_json: Any, store_id: str = "store") -> Any:
    """The data of the layout's store (after initial_arguments were applied)."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and props.get("id") == store_id:
                found.append(props.get("data"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout_json)
    assert found, "no store in the layout"
    return found[0]


def render_embedding(client: Client, user: Any, template: str, context: dict) -> tuple[str, str | None]:
    """Render one of the dashboards' templates for ``user`` (signed in on ``client``) the way a
    page includes it; returns the HTML and the first embedded app's initial-arguments id, if any.

    The tag stores the ids in the shared cache bound to ``user``, so the iframe's requests that
    follow (through the same client, signed in as ``user``) find them, exactly as the browser's would.
    """
    request = RequestFactory().get("/")
    request.session = client.session
    request.user = user
    html = Template("{% include '" + template + "' %}").render(Context({**context, "request": request}))
    request.session.save()
    match = re.search(r'src="[^"]*/initial/([^/"]+)/"', html)
    return html, match.group(1) if match else None
