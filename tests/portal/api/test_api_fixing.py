"""The API's side of fixing a dataset and of refusing jobs that cannot succeed: POST
/datasets/{id}/remap/, the upload's deduplicated / reused_bytes flags, target_col on job creation,
and labs named by slug or name."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from portal.accounts.models import Membership
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from tests.portal.api.conftest import token_client
from tests.portal.factories import DatasetFactory, LabFactory, MembershipFactory

pytestmark = pytest.mark.django_db
CSV = b"sequence,label\nACGTACGTAA,1\nTTTTGGGGCC,0\n"


def _upload(client, lab: str, mapping: str = "{}", policy: str = "strict"):  # noqa: ANN001, ANN202
    return client.post("/api/v1/datasets/", {
        "file": ContentFile(CSV, name="promoters.csv"), "name": "promoters", "lab": lab, "modality": "dna",
        "policy": policy, "mapping": mapping}, format="multipart")


def test_api_remap_and_reupload_make_versions_of_the_stored_bytes() -> None:
    member = MembershipFactory(role=Membership.Role.MEMBER, lab=LabFactory(name="Motif Lab", slug="motif"))
    client = token_client(member.user)
    first = _upload(client, "Motif Lab")  # the lab by its name
    assert first.status_code == 201 and (first.json()["deduplicated"], first.json()["reused_bytes"]) == (False, False)
    same = _upload(client, "motif")
    assert same.status_code == 200 and same.json()["deduplicated"] and same.json()["id"] == first.json()["id"]
    corrected = _upload(client, "motif", mapping='{"target_cols": ["label"]}')
    assert corrected.status_code == 201 and corrected.json()["version"] == 2 and corrected.json()["reused_bytes"]

    v1 = first.json()["id"]
    remapped = client.post(f"/api/v1/datasets/{v1}/remap/", {"policy": "skip"}, format="json")
    assert remapped.status_code == 201, remapped.json()
    body = remapped.json()
    assert (body["version"], body["policy"], body["schema"], body["reused_bytes"]) == (3, "skip", {}, True)
    assert Dataset.objects.get(pk=body["id"]).original_file.name == Dataset.objects.get(pk=v1).original_file.name
    again = client.post(f"/api/v1/datasets/{v1}/remap/", {"policy": "skip"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"] and again.json()["deduplicated"]
    bad = client.post(f"/api/v1/datasets/{v1}/remap/", {"mapping": {"task": "no-such-task"}}, format="json")
    assert bad.status_code == 400
    stranger = token_client(MembershipFactory().user)
    assert stranger.post(f"/api/v1/datasets/{v1}/remap/", {"policy": "skip"}, format="json").status_code == 404


def test_api_job_creation_refuses_what_cannot_succeed_and_takes_target_col() -> None:
    member = MembershipFactory(role=Membership.Role.MEMBER)
    dataset = DatasetFactory(owner=member.user, lab=member.lab, modality="dna", status=Dataset.Status.READY,
                             original_filename="assay.csv",
                             original_file=ContentFile(b"sequence,active\nACGT,1\nTTGA,0\n", name="assay.csv"))
    client = token_client(member.user)
    refused = client.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": "dna-classification"}, format="json")
    assert refused.status_code == 400 and "target_col" in refused.json()["error"]["fields"]
    assert "Pick the target column" in str(refused.json())
    gpu = client.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": "dna-classification", "target_col": "active",
                                        "device": "gpu"}, format="json")
    assert gpu.status_code == 400 and "no GPU worker is registered" in str(gpu.json())
    ok = client.post("/api/v1/jobs/", {"dataset": dataset.pk, "task": "dna-classification", "target_col": "active",
                                       "lab": member.lab.name}, format="json")
    assert ok.status_code == 201, ok.json()
    assert Job.objects.get().config["target_cols"] == ["active"]


def test_api_upload_without_a_modality_is_told_it_from_the_file_or_asked_for_it() -> None:
    member = MembershipFactory(role=Membership.Role.MEMBER, lab=LabFactory(slug="guess"))
    client = token_client(member.user)
    smiles = b"smiles,logS\nCCO,0.5\nc1ccccc1O,-0.3\nCC(=O)Nc1ccc(O)cc1,-1.2\nCCN(CC)CC,0.1\n"
    told = client.post("/api/v1/datasets/", {"file": ContentFile(smiles, name="solubility.csv"), "name": "sol",
                                             "lab": "guess"}, format="multipart")
    assert told.status_code == 201, told.json()
    assert told.json()["modality"] == "smiles" and told.json()["modality_guess"]
    named = _upload(client, "guess")  # a modality given is taken as given, and nothing is said about it
    assert named.status_code == 201 and named.json()["modality_guess"] == ""
    unknown = client.post("/api/v1/datasets/", {"file": ContentFile(b"a;b\n?!;@@\n", name="x.txt"), "name": "x",
                                                "lab": "guess"}, format="multipart")
    assert unknown.status_code == 400 and "modality" in unknown.json()["error"]["fields"]
    assert not Dataset.objects.filter(name="x").exists()
