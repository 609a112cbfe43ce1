"""The dataset's column mapping is mlcore.columns.ColumnMapping: checked by the upload page, the API and
the services alike, stored as its to_dict(), and older stored schemas compare as the mapping they mean."""

from __future__ import annotations

import json

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from mlcore.columns import ColumnMapping
from portal.accounts.services import api_token_create
from portal.common.errors import ServiceError
from portal.datasets import services
from portal.datasets.models import Dataset
from tests.portal.factories import MembershipFactory

pytestmark = pytest.mark.django_db
CSV = b"name,sequence,label\ns1,ACGTACGT,1\ns2,TTTTGGGG,0\n"


def _create(m, *, schema: dict | None, name: str = "promoters") -> Dataset:  # noqa: ANN001
    return services.dataset_create(owner=m.user, lab=m.lab, name=name, modality="dna", schema=schema,
                                   file=ContentFile(CSV, name="p.csv"), filename="p.csv", validate=False)


def test_the_service_stores_the_mapping_as_its_to_dict_and_refuses_two_roles() -> None:
    m = MembershipFactory()
    dataset = _create(m, schema={"input_cols": "sequence", "target_cols": ["label"], "id_col": " name ",
                                 "group_col": None, "task": "dna-classification"})
    assert dataset.schema == {"input_cols": ["sequence"], "target_cols": ["label"], "id_col": "name",
                              "task": "dna-classification"}
    with pytest.raises(ServiceError, match="'label' is a target column; it cannot also be the id column") as exc:
        _create(m, schema={"target_cols": ["label"], "id_col": "label"}, name="other")
    assert exc.value.field == "target_cols"
    with pytest.raises(ServiceError, match="cannot also be an input column"):
        services.dataset_remap(user=m.user, dataset=dataset, schema={"input_cols": ["label"], "target_cols": ["label"]})


def test_an_older_schema_with_empty_entries_is_the_same_reading() -> None:
    m = MembershipFactory()
    old = _create(m, schema={"target_cols": ["label"]})
    # As load_demo_data and the API stored it before: empty entries kept.
    Dataset.objects.filter(pk=old.pk).update(schema={"input_cols": [], "target_cols": ["label"], "id_col": None,
                                                     "group_col": None, "split_col": None})
    again = _create(m, schema={"target_cols": ["label"]})
    assert again.deduplicated and again.pk == old.pk


def test_the_api_and_the_upload_page_refuse_a_column_in_two_roles() -> None:
    m = MembershipFactory()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=m.user, name='t')[1]}")
    response = api.post("/api/v1/datasets/", {
        "file": SimpleUploadedFile("p.csv", CSV), "name": "p", "lab": m.lab.slug, "modality": "dna",
        "mapping": json.dumps({"target_cols": ["label"], "split_col": "label"})}, format="multipart")
    assert response.status_code == 400, response.json()
    assert "cannot also be the split column" in json.dumps(response.json())
    web = Client()
    web.force_login(m.user)
    response = web.post(reverse("web:dataset_upload"), {
        "file": SimpleUploadedFile("p.csv", CSV, content_type="text/csv"), "name": "p", "lab": m.lab.slug,
        "modality": "dna", "task": "", "input_cols": "", "target_cols": "label", "id_col": "label", "group_col": "",
        "split_col": "", "policy": "strict", "visibility": "lab", "description": ""})
    assert response.status_code == 400 and "cannot also be the id column" in response.content.decode()
    assert not Dataset.objects.filter(lab=m.lab).exists()
    # The API's accepted mapping is stored as ColumnMapping.to_dict() with the task.
    response = api.post("/api/v1/datasets/", {
        "file": SimpleUploadedFile("p.csv", CSV), "name": "p", "lab": m.lab.slug, "modality": "dna",
        "mapping": json.dumps({"input_cols": ["sequence"], "target_cols": ["label"], "id_col": None,
                               "task": "dna-classification"})}, format="multipart")
    assert response.status_code == 201, response.json()
    assert response.json()["schema"] == {**ColumnMapping(input_cols=("sequence",), target_cols=("label",)).to_dict(),
                                         "task": "dna-classification"}
