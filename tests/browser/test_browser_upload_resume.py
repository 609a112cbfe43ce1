"""A large upload in Chromium goes through the chunked, resumable path (the REST upload sessions, with
session auth) and survives a page reload: the connection fails after the first chunk, the researcher
reloads the page, the page offers to resume, the same file is chosen again and only the missing part
is sent. The stored file is byte for byte the original."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, expect

from portal.datasets.models import Dataset, UploadSession
from portal.web.views_data import CHUNK_BYTES, CHUNKED_THRESHOLD_BYTES
from tests.workers.conftest import planted_motif_csv

pytestmark = pytest.mark.django_db(transaction=True)
CHUNK_URL = re.compile(r"/chunk/\?offset=(\d+)")


def test_browser_chunked_upload_survives_a_reload_and_resumes(
    page: Page, member, sign_in, shot, broker, tmp_path: Path,  # noqa: ANN001
) -> None:
    # Just over the threshold: two chunks, the second one short.
    data = planted_motif_csv(CHUNKED_THRESHOLD_BYTES // 61 + 2000, length=60)
    assert CHUNKED_THRESHOLD_BYTES < len(data) < 2 * CHUNK_BYTES
    path = tmp_path / "motif.csv"
    path.write_bytes(data)
    sent: list[int] = []  # offsets of the chunks that reached the server
    network_back = False

    def chunks(route: Route) -> None:
        """The network breaks after the first chunk: the others fail until it is back."""
        offset = int(CHUNK_URL.search(route.request.url).group(1))
        if offset > 0 and not network_back:
            route.abort("connectionreset")
            return
        sent.append(offset)
        route.continue_()

    sign_in(page, member.user)
    page.goto("/datasets/upload/")
    page.select_option("#id_modality", "dna")
    page.select_option("#id_task", "dna-classification")
    page.locator("#upload-file").set_input_files(path)
    expect(page.locator("#upload-file-name")).to_contain_text("resumable chunks")
    page.fill("#id_name", "big-motifs")
    page.route(CHUNK_URL, chunks)
    page.locator("#upload-submit").click()

    # The first chunk arrives; the second fails and the page says it is retrying.
    expect(page.locator("#upload-status")).to_contain_text("hiccupped", timeout=30_000)
    expect(page.locator("#upload-progress")).to_have_attribute("aria-valuenow", str(100 * CHUNK_BYTES // len(data)))
    assert sent == [0]
    session = UploadSession.objects.get()
    assert session.status == UploadSession.Status.OPEN and session.offset == CHUNK_BYTES
    shot("upload-01-interrupted")

    # A reload: the page remembers the stopped upload and offers to resume it.
    page.reload()
    expect(page.locator("#upload-resume")).to_be_visible()
    expect(page.locator("#upload-resume-file")).to_contain_text("motif.csv")
    expect(page.locator("#upload-resume-percent")).to_contain_text(f"{100 * CHUNK_BYTES // len(data)}")
    shot("upload-02-resume-offered")
    network_back = True
    page.locator("#upload-file").set_input_files(path)
    expect(page.locator("#upload-status")).to_contain_text("continues the stopped upload")
    expect(page.locator("#id_name")).to_have_value("big-motifs")  # the form as it was filled
    page.locator("#upload-submit").click()
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=60_000)
    shot("upload-03-dataset")

    assert sent == [0, CHUNK_BYTES]  # the first chunk was not sent again
    dataset = Dataset.objects.get(name="big-motifs")
    assert dataset.sha256 == hashlib.sha256(data).hexdigest() and dataset.size_bytes == len(data)
    with dataset.original_file.open("rb") as fh:
        assert fh.read() == data
    session.refresh_from_db()
    assert session.status == UploadSession.Status.FINISHED and UploadSession.objects.count() == 1
    expect(page.locator("#dataset-status")).to_have_attribute("data-status", re.compile("uploaded|validating"))
