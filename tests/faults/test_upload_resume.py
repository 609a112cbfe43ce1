"""A killed CLI upload resumes: the CLI prints the upload's id before the first chunk, the server
lists the unfinished upload with the bytes it holds (GET /api/v1/uploads/), and
`labformer upload --resume ID FILE` sends only the rest; the dataset's bytes hash to the file's.
Real stack: the live portal on the test PostgreSQL, the CLI as a subprocess killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labformer_client import Client
from labformer_client.errors import NotFound
from portal.datasets.models import Dataset, UploadSession
from tests.clients.conftest import Portal, portal  # noqa: F401 - the live portal fixture
from tests.workers.conftest import planted_motif_csv

pytestmark = pytest.mark.django_db(transaction=True)
LABFORMER = Path(sys.executable).with_name("labformer")
CHUNK_MIB = 1 / 16  # 64 KiB chunks: a few MiB file is ~100 requests, so the kill lands mid-upload


def _command(portal: Portal) -> tuple[list[str], dict[str, str]]:  # noqa: F811
    command = [str(LABFORMER)] if LABFORMER.exists() else [sys.executable, "-m", "labformer_client"]
    return command, {**os.environ, "LABFORMER_URL": portal.url, "LABFORMER_TOKEN": portal.token}


def _upload_args(portal: Portal, path: Path) -> list[str]:  # noqa: F811
    return [str(path), "--name", "resumed", "--lab", portal.membership.lab.slug, "--modality", "dna",
            "--chunk-size", str(CHUNK_MIB), "--mapping", '{"input_cols": ["sequence"], "target_cols": ["label"]}']


@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    path = tmp_path / "motif.csv"
    data = planted_motif_csv(64, length=40)
    header, body = data.split(b"\n", 1)
    path.write_bytes(header + b"\n" + body * 1200)  # ~ 3 MiB of valid records
    return path


def test_upload_resume_after_the_cli_is_killed_sends_only_the_rest(portal: Portal, big_csv: Path) -> None:  # noqa: F811
    size = big_csv.stat().st_size
    chunk = int(CHUNK_MIB * (1 << 20))
    assert size > 20 * chunk
    command, env = _command(portal)
    first = subprocess.Popen([*command, "upload", *_upload_args(portal, big_csv)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stderr.readline()  # printed before the first chunk goes out
        match = re.match(r"upload ([0-9a-f-]{36}) started at byte 0 of (\d+)", line)
        assert match, line
        upload_id = match.group(1)
        assert int(match.group(2)) == size
        assert f"labformer upload --resume {upload_id}" in line
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # let a few chunks land, then kill the client mid-upload
            if UploadSession.objects.get(uid=upload_id).offset >= 3 * chunk:
                break
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL

    # The server says what it holds; the client lists it (GET /api/v1/uploads/ and `labformer uploads`).
    with Client(portal.url, portal.token) as client:
        listed = {u["id"]: u for u in client.list_uploads()}
    assert upload_id in listed, listed
    held = listed[upload_id]["offset"]
    assert listed[upload_id]["status"] == "open" and listed[upload_id]["size_bytes"] == size
    assert listed[upload_id]["filename"] == big_csv.name
    assert 3 * chunk <= held < size, (held, size)  # killed mid-upload
    table = subprocess.run([*command, "uploads"], env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and upload_id in table.stdout and f"{held}/{size}" in table.stdout.replace(" ", "")

    resumed = subprocess.run([*command, "upload", "--resume", upload_id, *_upload_args(portal, big_csv), "--json"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    # It started at the server's offset: the bytes already held were not sent again.
    assert f"upload {upload_id} resuming at byte {held} of {size}" in resumed.stderr
    dataset = json.loads(resumed.stdout)
    expected = hashlib.sha256(big_csv.read_bytes()).hexdigest()
    assert dataset["sha256"] == expected and dataset["size_bytes"] == size
    stored = Dataset.objects.get(pk=dataset["id"])
    with stored.original_file.open("rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == expected
    assert UploadSession.objects.get(uid=upload_id).status == UploadSession.Status.FINISHED
    with Client(portal.url, portal.token) as client:
        assert upload_id not in {u["id"] for u in client.list_uploads()}  # no longer unfinished
        assert upload_id in {u["id"] for u in client.list_uploads(status="finished")}


def test_upload_resume_refuses_another_file(portal: Portal, big_csv: Path, tmp_path: Path) -> None:  # noqa: F811
    """Resuming with a file of another size would corrupt the dataset: refused before any byte goes out."""
    with Client(portal.url, portal.token) as client:
        session = client._post("/uploads/", {"name": "x", "filename": big_csv.name, "lab": portal.membership.lab.slug,
                                             "modality": "dna", "size_bytes": big_csv.stat().st_size}, create=True)
    other = tmp_path / "other.csv"
    other.write_bytes(b"sequence,label\nACGT,1\n")
    command, env = _command(portal)
    out = subprocess.run([*command, "upload", "--resume", session["id"], *_upload_args(portal, other)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"upload {session['id']} is of a {big_csv.stat().st_size}-byte file" in out.stderr
    assert UploadSession.objects.get(uid=session["id"]).offset == 0


def test_upload_list_shows_only_your_own_uploads(portal: Portal, big_csv: Path) -> None:  # noqa: F811
    from portal.accounts.models import Membership
    from portal.accounts.services import api_token_create
    from tests.portal.factories import MembershipFactory

    stranger = MembershipFactory(lab=portal.membership.lab, role=Membership.Role.MEMBER)
    _, token = api_token_create(user=stranger.user, name="t")
    with Client(portal.url, portal.token) as client:
        session = client._post("/uploads/", {"name": "x", "filename": "a.csv", "lab": portal.membership.lab.slug,
                                             "modality": "dna", "size_bytes": 10}, create=True)
    with Client(portal.url, token) as client:
        assert list(client.list_uploads()) == []  # a lab colleague does not see it
        with pytest.raises(NotFound):
            client.upload_status(session["id"])
