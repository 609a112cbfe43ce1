"""The CLI fixes a dataset and is refused a job that cannot succeed, against a live portal: a repeated
upload says what it did, `labformer dataset remap` makes a new version of the stored bytes, `submit`
names the fix (--target-col, the regression task, no GPU worker), and labs go by slug or name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from portal.datasets.models import Dataset
from portal.jobs.models import Job
from tests.clients.conftest import Portal
from tests.portal.factories import DatasetFactory

pytestmark = pytest.mark.django_db(transaction=True)
LABFORMER = Path(sys.executable).with_name("labformer")
CSV = b"sequence,label\nACGTACGTAA,1\nTTGACCATGA,0\nGGGTTTAACC,1\n"


def cli(portal: Portal, *args: str) -> subprocess.CompletedProcess:
    command = [str(LABFORMER)] if LABFORMER.exists() else [sys.executable, "-m", "labformer_client"]
    env = {**os.environ, "LABFORMER_URL": portal.url, "LABFORMER_TOKEN": portal.token}
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_says_what_an_upload_did_and_remaps_a_dataset_into_a_new_version(
        portal: Portal, broker, tmp_path: Path) -> None:  # noqa: ANN001
    lab = portal.membership.lab
    path = tmp_path / "promoters.csv"
    path.write_bytes(CSV)
    first = cli(portal, "upload", str(path), "--name", "promoters", "--lab", lab.name, "--modality", "dna", "--json")
    assert first.returncode == 0, first.stderr  # the lab by its name, as the pages show it
    v1 = json.loads(first.stdout)
    assert "uploaded, a new version" in first.stderr and v1["version"] == 1 and v1["lab"]["slug"] == lab.slug

    again = cli(portal, "upload", str(path), "--name", "promoters", "--lab", lab.slug, "--modality", "dna")
    assert again.returncode == 0 and "nothing new was stored" in again.stderr and "dataset remap" in again.stderr

    remapped = cli(portal, "dataset", "remap", str(v1["id"]), "--target-col", "label", "--task", "dna-classification",
                   "--policy", "skip", "--json")
    assert remapped.returncode == 0, remapped.stderr
    v2 = json.loads(remapped.stdout)
    assert (v2["version"], v2["reused_bytes"], v2["deduplicated"], v2["policy"]) == (2, True, False, "skip")
    assert v2["schema"] == {"target_cols": ["label"], "task": "dna-classification"}
    assert "reusing bytes already stored" in remapped.stderr
    stored = Dataset.objects.get(pk=v2["id"])
    assert stored.original_file.name == Dataset.objects.get(pk=v1["id"]).original_file.name

    same = cli(portal, "dataset", "remap", str(v1["id"]), "--target-col", "label", "--task", "dna-classification",
               "--policy", "skip", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["id"] == v2["id"] and "nothing new" in same.stderr
    unknown_lab = cli(portal, "upload", str(path), "--name", "p", "--lab", "No such lab", "--modality", "dna")
    assert unknown_lab.returncode == 5 and lab.slug in unknown_lab.stderr  # the error lists the user's labs


def test_cli_submit_is_refused_with_the_fix_named_and_takes_target_col(portal: Portal, broker) -> None:  # noqa: ANN001
    m = portal.membership
    dataset = DatasetFactory(owner=m.user, lab=m.lab, modality="dna", status=Dataset.Status.READY,
                             original_filename="assay.csv",
                             original_file=ContentFile(b"sequence,active\nACGTACGT,1\nTTGACCAA,0\n", name="assay.csv"))
    refused = cli(portal, "submit", "--dataset", str(dataset.pk), "--task", "dna-classification")
    assert refused.returncode == 5 and "Pick the target column" in refused.stderr and "--target-col" in refused.stderr
    gpu = cli(portal, "submit", "--dataset", str(dataset.pk), "--task", "dna-classification", "--target-col",
              "active", "--device", "gpu")
    assert gpu.returncode == 5 and "no GPU worker is registered" in gpu.stderr
    assert not Job.objects.exists()
    ok = cli(portal, "submit", "--dataset", str(dataset.pk), "--task", "dna-classification", "--target-col", "active",
             "--lab", m.lab.name, "--json")
    assert ok.returncode == 0, ok.stderr
    assert Job.objects.get(pk=json.loads(ok.stdout)["id"]).config["target_cols"] == ["active"]


def test_cli_upload_without_a_modality_says_what_it_told_from_the_file(portal: Portal, broker, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "promoters.csv"
    path.write_bytes(CSV)
    out = cli(portal, "upload", str(path), "--name", "promoters", "--lab", portal.membership.lab.slug, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["modality"] == "dna"
    assert "modality dna, told from the file" in out.stderr and "--modality" in out.stderr
