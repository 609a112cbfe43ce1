"""Dataset explorer: the figures drawn from a real validation report (the worker's validation run on a
small molecule file), the RDKit grid read from the canonical copy, and access through the real Dash
endpoints."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from portal.accounts.models import Visibility
from portal.dashboards import dataset_explorer as dx
from portal.dashboards.common import figure_rows
from portal.datasets.models import Dataset
from tests.portal.dashboards import dashboard_client as dash
from tests.portal.factories import DatasetFactory, MembershipFactory
from workers.validation import dataset_validate_run

pytestmark = pytest.mark.django_db

APP = dx.APP_NAME
DEMO = Path(__file__).resolve().parents[3] / "mlcore" / "demo_data" / "files" / "solubility_huuskonen.csv"
OUTPUTS = [f"{dx.CLASS_GRAPH}.figure", f"{dx.LENGTH_GRAPH}.figure", f"{dx.STATUS_ID}.children", f"{dx.TICK_ID}.disabled",
           f"{dx.TARGET_SELECT}.options", f"{dx.TARGET_SELECT}.value", f"{dx.TARGET_SELECT}-row.style",
           f"{dx.MOLECULE_SECTION}.style", f"{dx.MOLECULE_GRID}.children", f"{dx.CLASS_PANEL}.style",
           f"{dx.TARGET_PANEL}.style"]


def _molecules(member, *, target: str, task: str, rows: int = 40, **kwargs) -> Dataset:
    text = "".join(DEMO.read_text().splitlines(keepends=True)[: rows + 1])
    dataset = DatasetFactory(
        owner=member.user, lab=member.lab, modality="smiles", status=Dataset.Status.UPLOADED,
        original_file=ContentFile(text.encode(), name="molecules.csv"), original_filename="molecules.csv",
        schema={"input_cols": ["smiles"], "target_cols": [target], "id_col": "id", "task": task}, **kwargs,
    )
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.READY
    dataset.refresh_from_db()
    return dataset


@pytest.fixture
def member():
    return MembershipFactory()


def test_classification_report_gives_class_balance_and_lengths(member):
    dataset = _molecules(member, target="solubility_class", task="molecule-classification")
    stats = dx.stats_of(dataset)
    counts = dx.class_counts(stats)
    assert sum(c for _, c in counts) == 40 and counts == sorted(counts, key=lambda kv: (-kv[1], kv[0]))
    figs = dx.figures(dataset)
    bar = figs[dx.CLASS_GRAPH].data[0]
    assert list(bar.x) == [label for label, _ in counts] and list(bar.y) == [c for _, c in counts]
    assert figs[dx.CLASS_GRAPH].layout.yaxis.title.text == "Records (count)"
    length = figs[dx.LENGTH_GRAPH]
    assert sum(length.data[0].y) == 40
    assert length.layout.xaxis.title.text == "Length (SMILES tokens)"
    assert "categorical target" in str(figs[dx.TARGET_GRAPH].layout.annotations[0].text)


def test_regression_report_gives_target_histogram(member):
    dataset = _molecules(member, target="logS", task="molecule-regression")
    assert dx.target_columns(dx.stats_of(dataset)) == ["logS"]
    fig = dx.target_figure(dataset, "logS")
    bars = fig.data[0]
    assert sum(bars.y) == 40
    hist = dx.histogram(dx.target_summary(dx.stats_of(dataset), "logS")["histogram"])
    assert list(bars.x) == hist.centers and hist.centers[0] == pytest.approx((hist.edges[0] + hist.edges[1]) / 2)
    assert fig.layout.xaxis.title.text == "logS (target units)"
    assert "no classes" in str(dx.class_figure(dataset).layout.annotations[0].text)


def test_histogram_refuses_malformed_specs():
    assert dx.histogram({"edges": [0, 1], "counts": [1, 2]}) is None
    assert dx.histogram(None) is None
    h = dx.histogram({"edges": [0.0, 1.0, 3.0], "counts": [4, 5]})
    assert h.centers == [0.5, 2.0] and h.widths == [1.0, 2.0] and h.counts == [4, 5]


def test_molecule_examples_come_from_the_canonical_copy_with_lines(member):
    dataset = _molecules(member, target="logS", task="molecule-regression")
    molecules = dx.molecule_examples(dataset, n=5)
    assert [m.line for m in molecules] == [2, 3, 4, 5, 6]  # file lines: the header is line 1
    assert molecules[0].smiles == "CCCCC" and molecules[0].target == "-3.18"
    assert all(m.svg.startswith("<?xml") or "<svg" in m.svg for m in molecules)
    png = dx.molecule_grid_png(molecules)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert dx.molecules_csv(molecules).splitlines()[:2] == ["line,smiles,target", "2,CCCCC,-3.18"]


def test_validating_dataset_says_so_and_keeps_refreshing(client, member):
    dataset = DatasetFactory(owner=member.user, lab=member.lab, status=Dataset.Status.VALIDATING)
    client.force_login(member.user)
    props = dash.response_props(dash.update(client, APP, outputs=OUTPUTS,
                                            inputs={"store.data": {"dataset_id": dataset.pk}, f"{dx.TICK_ID}.n_intervals": 0}))
    assert props[dx.TICK_ID]["disabled"] is False
    assert "Validating" in dash.payload_text(dash.update(client, APP, outputs=OUTPUTS, inputs={
        "store.data": {"dataset_id": dataset.pk}, f"{dx.TICK_ID}.n_intervals": 1}))


def test_owner_gets_panels_and_molecules(client, member):
    dataset = _molecules(member, target="logS", task="molecule-regression", visibility=Visibility.PRIVATE)
    client.force_login(member.user)
    response = dash.update(client, APP, outputs=OUTPUTS,
                           inputs={"store.data": {"dataset_id": dataset.pk}, f"{dx.TICK_ID}.n_intervals": 0})
    props = dash.response_props(response)
    assert props[dx.TICK_ID]["disabled"] is True
    assert props[dx.MOLECULE_SECTION]["style"]["display"] == "block"
    cards = props[dx.MOLECULE_GRID]["children"]
    assert len(cards) == dx.N_MOLECULES and cards[0]["props"]["data-line"] == "2"
    assert props[dx.TARGET_SELECT]["value"] == "logS"
    assert props[dx.TARGET_PANEL]["style"] == {} and props[dx.CLASS_PANEL]["style"] == {"display": "none"}
    target = dash.response_props(dash.update(
        client, APP, outputs=[f"{dx.TARGET_GRAPH}.figure"],
        inputs={"store.data": {"dataset_id": dataset.pk}, f"{dx.TARGET_SELECT}.value": "logS", f"{dx.TICK_ID}.disabled": True},
    ))[dx.TARGET_GRAPH]["figure"]
    columns, rows = figure_rows(target)
    assert columns == ["trace", "logS (bin centre)", "records"]
    assert sum(row[columns.index("records")] for row in rows) == 40
    png = dash.response_props(dash.update(client, APP, outputs=[f"{dx.MOLECULE_PNG}-download.data"],
                                          inputs={f"{dx.MOLECULE_PNG}.n_clicks": 1},
                                          state={"store.data": {"dataset_id": dataset.pk}}))
    assert base64.b64decode(png[f"{dx.MOLECULE_PNG}-download"]["data"]["content"])[:4] == b"\x89PNG"


@pytest.mark.parametrize("who", ["other_lab", "anonymous"])
def test_private_dataset_is_unreachable(client, member, who):
    dataset = _molecules(member, target="logS", task="molecule-regression", visibility=Visibility.PRIVATE)
    if who == "other_lab":
        client.force_login(MembershipFactory().user)
    calls = [
        dash.update(client, APP, outputs=OUTPUTS, inputs={"store.data": {"dataset_id": dataset.pk}, f"{dx.TICK_ID}.n_intervals": 0}),
        dash.update(client, APP, outputs=[f"{dx.TARGET_GRAPH}.figure"],
                    inputs={"store.data": {"dataset_id": dataset.pk}, f"{dx.TARGET_SELECT}.value": "logS",
                            f"{dx.TICK_ID}.disabled": True}),
        dash.update(client, APP, outputs=[f"{dx.MOLECULE_GRID}-download.data"], inputs={f"{dx.MOLECULE_CSV}.n_clicks": 1},
                    state={"store.data": {"dataset_id": dataset.pk}}),
        dash.update(client, APP, outputs=[f"{dx.LENGTH_GRAPH}-download.data"], inputs={f"{dx.LENGTH_GRAPH}-csv.n_clicks": 1},
                    state={"store.data": {"dataset_id": dataset.pk}, f"{dx.TARGET_SELECT}.value": None}),
        dash.update(client, APP, outputs=[f"{dx.MOLECULE_PNG}-download.data"], inputs={f"{dx.MOLECULE_PNG}.n_clicks": 1},
                    state={"store.data": {"dataset_id": dataset.pk}}),
    ]
    if who == "anonymous":
        assert {r.status_code for r in calls} == {302}
        return
    for response in calls[:4]:
        text = dash.payload_text(response)
        assert "CCCCC" not in text and dataset.name not in text and "logS" not in text
    assert "not found" in dash.response_props(calls[0])[dx.STATUS_ID]["children"]
    assert dash.response_props(calls[0])[dx.MOLECULE_GRID]["children"] == []
    assert calls[4].status_code == 204  # nothing to send


def test_template_embeds_explorer_and_tradeoffs_for_the_dataset(client, member):
    dataset = DatasetFactory(owner=member.user, lab=member.lab)
    client.force_login(member.user)
    html, _ = dash.render_embedding(client, member.user, "dashboards/dataset_panels.html", {"dataset": dataset})
    embedded = re.findall(r'/django_plotly_dash/app/([^/"]+)/initial/([^/"]+)/"', html)
    assert [app for app, _ in embedded] == [dx.APP_NAME, "tradeoffs"]
    for app, cache_id in embedded:
        assert dash.store_of_layout(dash.layout(client, app, cache_id=cache_id).json()) == {"dataset_id": dataset.pk}


TABULAR = "age,color,score,label\n" + "".join(
    f"{20 + i % 50},{['red', 'blue', 'NA'][i % 3]},{'' if i % 10 == 0 else i * 0.5},{i % 2}\n" for i in range(120))


def _tabular(member) -> Dataset:
    dataset = DatasetFactory(
        owner=member.user, lab=member.lab, modality="tabular", status=Dataset.Status.UPLOADED,
        original_file=ContentFile(TABULAR.encode(), name="table.csv"), original_filename="table.csv",
        schema={"target_cols": ["label"], "task": "tabular-classification"},
    )
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.READY
    dataset.refresh_from_db()
    return dataset


def test_tabular_dataset_shows_per_feature_distributions_not_record_length(member, client):
    dataset = _tabular(member)
    fig = dx.figures(dataset)[dx.LENGTH_GRAPH]
    assert [t.name for t in fig.data] == ["age", "color", "score"]
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["age · numeric · 0% missing", "color · categorical · 33% missing", "score · numeric · 10% missing"]
    assert sum(fig.data[0].y) == 120 and sorted(fig.data[1].x) == ["blue", "red"]
    assert "Length" not in (fig.layout.xaxis.title.text or "") and fig.layout.title.text == "Features (3)"
    rows = dx.feature_rows(dx.stats_of(dataset))
    assert [(r["name"], r["type"], r["missing_share"]) for r in rows] == [
        ("age", "numeric", "0.0%"), ("color", "categorical", "33.3%"), ("score", "numeric", "10.0%")]
    assert rows[0]["summary"] == "20 to 69, mean 42" and rows[1]["summary"].startswith("2 distinct: ")
    # The dataset page lists the same summary.
    client.force_login(member.user)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'id="report-features"' in page and "20 to 69, mean 42" in page and "33.3%" in page


def test_sequence_dataset_keeps_its_length_histogram(member):
    dataset = _molecules(member, target="logS", task="molecule-regression")
    assert dx.feature_rows(dx.stats_of(dataset)) == []
    assert dx.figures(dataset)[dx.LENGTH_GRAPH].layout.xaxis.title.text == "Length (SMILES tokens)"
