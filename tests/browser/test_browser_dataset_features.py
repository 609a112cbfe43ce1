"""A tabular dataset's page in Chromium: the validation report lists every feature (type, missing
share, range or values, distribution) and the dataset explorer draws one distribution per feature
where it used to draw a one-bar "record length" histogram. Screenshot: test-results/dataset-features.png."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Page, expect

from portal.datasets.models import Dataset
from tests.browser.conftest import dashboard, wait_for_figure
from tests.portal.factories import DatasetFactory
from workers.validation import dataset_validate_run

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "age,color,score,label\n" + "".join(
    f"{20 + i % 50},{['red', 'blue', 'NA'][i % 3]},{'' if i % 10 == 0 else i * 0.5},{i % 2}\n" for i in range(120))


def test_browser_tabular_dataset_page_shows_feature_summaries(page: Page, member, sign_in, shot) -> None:  # noqa: ANN001
    dataset = DatasetFactory(
        owner=member.user, lab=member.lab, modality="tabular", status=Dataset.Status.UPLOADED,
        original_file=ContentFile(TABLE.encode(), name="table.csv"), original_filename="table.csv",
        schema={"target_cols": ["label"], "task": "tabular-classification"},
    )
    assert dataset_validate_run(dataset_id=dataset.pk) == Dataset.Status.READY
    sign_in(page, member.user)
    page.goto(f"/datasets/{dataset.pk}/")
    rows = page.locator("#report-features tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("age")
    expect(rows.nth(0)).to_contain_text("numeric")
    expect(rows.nth(0)).to_contain_text("20 to 69")
    expect(rows.nth(1)).to_contain_text("categorical")
    expect(rows.nth(1)).to_contain_text("33.3%")
    expect(rows.nth(2)).to_contain_text("10.0%")
    expect(rows.nth(0).locator("svg rect")).to_have_count(20)  # the age histogram's 20 bins
    drawn = wait_for_figure(dashboard(page, "dataset_explorer"), "length-graph",
                            lambda traces: len(traces) == 3, what="has no per-feature traces")
    assert [t["name"] for t in drawn] == ["age", "color", "score"]
    assert sum(drawn[0]["values"]) == 120 and sum(drawn[1]["values"]) == 80  # color: 40 missing
    shot("dataset-features", page.locator("#dataset-report"))
    shot("dataset-features-dashboard", page.locator("[data-dashboard='dataset_explorer']"))
