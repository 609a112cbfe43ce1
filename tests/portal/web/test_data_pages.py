"""The data pages: dataset list, upload, dataset page, status feed, download, delete.

Through Django's test client against the real database and the real services."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from portal.accounts.models import Membership, Visibility
from portal.datasets.models import Dataset
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

CSV = b"sequence,label\nACGTACGT,1\nTTGACCA,0\nGGGTTTAA,1\n"


def _page_urls(dataset: Dataset) -> list[str]:
    return [
        reverse("web:dataset_list"),
        reverse("web:dataset_upload"),
        reverse("web:dataset_detail", args=[dataset.pk]),
        reverse("web:dataset_status", args=[dataset.pk]),
        reverse("web:dataset_download", args=[dataset.pk]),
        reverse("web:dataset_delete", args=[dataset.pk]),
    ]


def test_anonymous_is_sent_to_sign_in(lab) -> None:
    dataset = DatasetFactory(lab=lab)
    client = Client()
    for url in _page_urls(dataset):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("login") + "?next="), url


def test_another_labs_private_and_lab_datasets_are_404(member_client, outsider) -> None:
    for visibility in (Visibility.PRIVATE, Visibility.LAB):
        hidden = DatasetFactory(owner=outsider, lab=outsider.memberships.get().lab, visibility=visibility)
        for url in _page_urls(hidden)[2:]:
            assert member_client.get(url).status_code == 404, (visibility, url)
        assert member_client.post(reverse("web:dataset_delete", args=[hidden.pk])).status_code == 404
        assert Dataset.objects.filter(pk=hidden.pk).exists()


def test_list_shows_what_the_user_may_see_and_filters(member_client, member, lab, outsider, other_lab) -> None:
    mine = DatasetFactory(owner=member, lab=lab, name="promoters", modality="dna")
    shared = DatasetFactory(lab=lab, name="solubility", modality="protein", visibility=Visibility.LAB)
    public = DatasetFactory(owner=outsider, lab=other_lab, name="open-jets", modality="particles",
                            visibility=Visibility.PUBLIC)
    private = DatasetFactory(owner=outsider, lab=other_lab, name="secret-set", visibility=Visibility.PRIVATE)

    page = member_client.get(reverse("web:dataset_list"))
    assert page.status_code == 200
    html = page.content.decode()
    for d in (mine, shared, public):
        assert reverse("web:dataset_detail", args=[d.pk]) in html
    assert private.name not in html
    assert "<title>Datasets · Labformer</title>" in html

    only_protein = member_client.get(reverse("web:dataset_list"), {"modality": "protein"}).content.decode()
    assert "solubility" in only_protein and "promoters" not in only_protein
    only_mine = member_client.get(reverse("web:dataset_list"), {"mine": "1"}).content.decode()
    assert "promoters" in only_mine and "solubility" not in only_mine
    nothing = member_client.get(reverse("web:dataset_list"), {"q": "no-such-name"}).content.decode()
    assert 'id="empty-datasets"' in nothing and "Clear the filters" in nothing


def test_empty_list_says_what_to_do(member_client) -> None:
    html = member_client.get(reverse("web:dataset_list")).content.decode()
    assert 'id="empty-datasets"' in html
    assert reverse("web:dataset_upload") in html


# --- upload --------------------------------------------------------------------------------------------

def _upload_data(lab_slug: str, **overrides) -> dict:
    data = {
        "file": SimpleUploadedFile("promoters.csv", CSV, content_type="text/csv"),
        "name": "promoters", "lab": lab_slug, "modality": "dna", "task": "dna-classification",
        "input_cols": "sequence", "target_cols": "label", "id_col": "", "group_col": "", "split_col": "",
        "policy": "skip", "visibility": "private", "description": "first try",
    }
    data.update(overrides)
    return data


def test_upload_page_renders_with_the_current_lab_chosen(member_client, lab) -> None:
    response = member_client.get(reverse("web:dataset_upload"))
    assert response.status_code == 200
    html = response.content.decode()
    for element in ('id="upload-form"', 'id="upload-file"', 'id="upload-submit"', 'id="upload-progress"',
                    'id="upload-dropzone"', 'id="modality-info"', 'id="upload-config"'):
        assert element in html
    assert f'<option value="{lab.slug}" selected>' in html
    config = json.loads(html.split('id="upload-config" type="application/json">')[1].split("</script>")[0])
    assert config["sessionsUrl"] == "/api/v1/uploads/"
    assert config["chunkedThreshold"] > 0


def test_small_upload_creates_the_dataset_with_its_mapping(member_client, member, lab) -> None:
    response = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug))
    dataset = Dataset.objects.get(name="promoters", lab=lab)
    assert response.status_code == 302
    assert response.url == reverse("web:dataset_detail", args=[dataset.pk])
    assert dataset.owner == member and dataset.version == 1
    assert dataset.policy == "skip" and dataset.visibility == "private" and dataset.description == "first try"
    assert dataset.schema == {"input_cols": ["sequence"], "target_cols": ["label"], "task": "dna-classification"}
    assert dataset.sha256 == hashlib.sha256(CSV).hexdigest()
    assert dataset.original_filename == "promoters.csv"
    with dataset.original_file.open("rb") as fh:
        assert fh.read() == CSV

    again = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug))
    assert again.url == reverse("web:dataset_detail", args=[dataset.pk])  # same bytes, same name: no new row
    assert Dataset.objects.filter(lab=lab).count() == 1
    assert any("already" in str(m) for m in get_messages(again.wsgi_request))


def test_upload_errors_stand_next_to_the_field_and_keep_the_input(member_client, lab) -> None:
    response = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug, name="  ",
                                                                                 description="keep me"))
    assert response.status_code == 400
    html = response.content.decode()
    error = html.split('id="error-name">')[1].split("</div>")[0]
    assert "required" in error or "name" in error
    assert "keep me" in html  # the description survives
    assert '<option value="dna" selected>' in html
    assert 'value="sequence"' in html  # the column mapping survives
    assert 'id="id_policy_skip" value="skip" checked' in html
    assert not Dataset.objects.exists()


def test_upload_refuses_a_task_of_another_modality(member_client, lab) -> None:
    response = member_client.post(reverse("web:dataset_upload"),
                                  _upload_data(lab.slug, task="molecule-regression"))
    assert response.status_code == 400
    error = response.content.decode().split('id="error-task">')[1].split("</div>")[0]
    assert "Molecules" in error or "molecules" in error
    assert not Dataset.objects.exists()


def test_upload_to_a_lab_where_the_user_only_views_is_refused_at_the_lab_field(lab) -> None:
    viewer = MembershipFactory(lab=lab, role=Membership.Role.VIEWER).user
    client = Client()
    client.force_login(viewer)
    response = client.post(reverse("web:dataset_upload"), _upload_data(lab.slug))
    assert response.status_code == 400
    error = response.content.decode().split('id="error-lab">')[1].split("</div>")[0]
    assert "cannot add datasets" in error
    assert not Dataset.objects.exists()


def test_upload_to_a_lab_the_user_is_not_in_is_not_a_choice(member_client, other_lab) -> None:
    response = member_client.post(reverse("web:dataset_upload"), _upload_data(other_lab.slug))
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode().split('id="error-lab">')[1].split("</div>")[0]
    assert not Dataset.objects.exists()


def test_upload_without_a_file_says_so(member_client, lab) -> None:
    data = _upload_data(lab.slug)
    del data["file"]
    response = member_client.post(reverse("web:dataset_upload"), data)
    assert response.status_code == 400
    assert "required" in response.content.decode().split('id="error-file">')[1].split("</div>")[0]


def test_chunked_path_the_page_uses_works_with_session_auth_and_csrf(member, lab) -> None:
    """The upload page's JavaScript: session cookie + X-CSRFToken against /api/v1/uploads/."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    page = client.get(reverse("web:dataset_upload"))
    token = page.cookies["csrftoken"].value
    payload = {"name": "big-one", "filename": "big.csv", "lab": lab.slug, "modality": "dna",
               "size_bytes": len(CSV), "visibility": "lab", "policy": "strict", "description": "",
               "mapping": {"input_cols": ["sequence"], "target_cols": ["label"]}}
    refused = client.post("/api/v1/uploads/", payload, content_type="application/json")
    assert refused.status_code == 403  # no CSRF token: a cross-site page cannot start uploads
    session = client.post("/api/v1/uploads/", payload, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert session.status_code == 201, session.content
    uid = session.json()["id"]
    half = len(CSV) // 2
    for start, end in ((0, half), (half, len(CSV))):
        chunk = client.generic("PUT", f"/api/v1/uploads/{uid}/chunk/?offset={start}", CSV[start:end],
                               content_type="application/octet-stream", HTTP_X_CSRFTOKEN=token,
                               HTTP_CONTENT_DISPOSITION='attachment; filename="big.csv"')
        assert chunk.status_code == 200, chunk.content
    # After a reload the page asks where the server is.
    assert client.get(f"/api/v1/uploads/{uid}/").json()["offset"] == len(CSV)
    done = client.post(f"/api/v1/uploads/{uid}/finish/", {"sha256": hashlib.sha256(CSV).hexdigest()},
                       content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert done.status_code == 201, done.content
    dataset = Dataset.objects.get(pk=done.json()["id"])
    assert dataset.schema == {"input_cols": ["sequence"], "target_cols": ["label"]}
    assert client.get(reverse("web:dataset_detail", args=[dataset.pk])).status_code == 200


# --- the dataset page ------------------------------------------------------------------------------

REPORT = {
    "status": "invalid", "rows": 5, "valid": 3, "invalid": 2, "policy": "strict",
    "totals": {"bad_character": 1, "target_missing": 1},
    "problems": [
        {"line": 3, "column": "sequence", "code": "bad_character", "reason": "character 'J' is not a base",
         "value": "ACJT"},
        {"line": 6, "column": "label", "code": "target_missing", "reason": "missing label", "value": ""},
    ],
    "warnings": [{"code": "duplicate", "count": 2, "message": "2 record(s) repeat an earlier one"}],
}


def test_dataset_page_shows_report_preview_versions_and_jobs(member_client, member, lab) -> None:
    v1 = DatasetFactory(owner=member, lab=lab, name="promoters", version=1, status=Dataset.Status.INVALID,
                        validation_report=REPORT, original_filename="promoters.csv")
    v2 = DatasetFactory(owner=member, lab=lab, name="promoters", version=2, status=Dataset.Status.READY,
                        original_filename="promoters.csv")
    job = JobFactory(owner=member, lab=lab, dataset=v2, name="first-run")

    html = member_client.get(reverse("web:dataset_detail", args=[v1.pk])).content.decode()
    assert "<title>promoters v1 · Datasets · Labformer</title>" in html
    assert 'id="dataset-status"' in html and "lf-status-invalid" in html
    totals = html.split('id="report-totals"')[1].split("</table>")[0]
    assert "bad_character" in totals and "target_missing" in totals
    problems = html.split('id="report-problems"')[1].split("</table>")[0]
    assert ">3</td>" in problems and ">6</td>" in problems and "character &#x27;J&#x27; is not a base" in problems
    assert "2 record(s) repeat an earlier one" in html
    preview = html.split('id="dataset-preview"')[1].split("</table>")[0]
    assert "<th>sequence</th>" in preview and "ACGT" in preview  # read from the stored original
    versions = html.split('id="dataset-versions"')[1].split("</table>")[0]
    assert reverse("web:dataset_detail", args=[v2.pk]) in versions and "v1 (this one)" in versions
    assert 'data-final="1"' in html
    # v1 is invalid: no job can be launched from it.
    assert 'id="dataset-launch" aria-disabled="true"' in html

    html2 = member_client.get(reverse("web:dataset_detail", args=[v2.pk])).content.decode()
    jobs = html2.split('id="dataset-jobs"')[1].split("</table>")[0]
    assert "first-run" in jobs
    launch = reverse("web:job_launch")
    assert f'href="{launch}?dataset={v2.pk}"' in html2
    assert 'id="report-clean"' in html2
    assert reverse("web:dataset_download", args=[v2.pk]) in html2
    assert job.pk


def test_dataset_page_while_validating_polls_its_status(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab, status=Dataset.Status.VALIDATING)
    html = member_client.get(reverse("web:dataset_detail", args=[dataset.pk])).content.decode()
    assert 'data-final="0"' in html and 'id="dataset-validating"' in html
    assert reverse("web:dataset_status", args=[dataset.pk]) in html

    status = member_client.get(reverse("web:dataset_status", args=[dataset.pk])).json()
    assert status == {"id": dataset.pk, "status": "validating", "status_label": "Validating", "final": False,
                      "row_count": None}
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.READY, row_count=2)
    status = member_client.get(reverse("web:dataset_status", args=[dataset.pk])).json()
    assert status["final"] is True and status["status"] == "ready" and status["row_count"] == 2


def test_public_dataset_of_another_lab_can_be_seen_and_downloaded_but_not_deleted(member_client, outsider,
                                                                                   other_lab) -> None:
    public = DatasetFactory(owner=outsider, lab=other_lab, visibility=Visibility.PUBLIC,
                            original_filename="open.csv")
    html = member_client.get(reverse("web:dataset_detail", args=[public.pk])).content.decode()
    assert 'id="dataset-delete"' not in html
    response = member_client.post(reverse("web:dataset_delete", args=[public.pk]))
    assert response.status_code == 302 and response.url == reverse("web:dataset_detail", args=[public.pk])
    assert Dataset.objects.filter(pk=public.pk).exists()
    assert any("owner" in str(m) for m in get_messages(response.wsgi_request))
    download = member_client.get(reverse("web:dataset_download", args=[public.pk]))
    assert download.status_code == 200


def test_download_streams_the_original_bytes(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab, original_filename="promoters.csv")
    response = member_client.get(reverse("web:dataset_download", args=[dataset.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert 'attachment; filename="promoters.csv"' == response["Content-Disposition"]
    with dataset.original_file.open("rb") as fh:
        assert b"".join(response.streaming_content) == fh.read()


def test_delete_asks_then_deletes(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab, name="scratch")
    confirm = member_client.get(reverse("web:dataset_delete", args=[dataset.pk]))
    assert confirm.status_code == 200 and 'id="delete-confirm"' in confirm.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    response = member_client.post(reverse("web:dataset_delete", args=[dataset.pk]))
    assert response.status_code == 302 and response.url == reverse("web:dataset_list")
    assert not Dataset.objects.filter(pk=dataset.pk).exists()


def test_delete_of_a_dataset_jobs_used_is_refused_with_the_reason(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab)
    JobFactory(owner=member, lab=lab, dataset=dataset)
    confirm = member_client.get(reverse("web:dataset_delete", args=[dataset.pk])).content.decode()
    assert 'id="delete-blocked"' in confirm and 'id="delete-confirm"' not in confirm
    response = member_client.post(reverse("web:dataset_delete", args=[dataset.pk]))
    assert response.status_code == 302 and response.url == reverse("web:dataset_detail", args=[dataset.pk])
    assert any("used by 1 job" in str(m) for m in get_messages(response.wsgi_request))
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_another_members_lab_dataset_cannot_be_deleted_by_a_plain_member(lab) -> None:
    owner = MembershipFactory(lab=lab).user
    dataset = DatasetFactory(owner=owner, lab=lab, visibility=Visibility.LAB)
    other_member = MembershipFactory(lab=lab).user
    client = Client()
    client.force_login(other_member)
    assert 'id="dataset-delete"' not in client.get(reverse("web:dataset_detail", args=[dataset.pk])).content.decode()
    client.post(reverse("web:dataset_delete", args=[dataset.pk]))
    assert Dataset.objects.filter(pk=dataset.pk).exists()


def test_a_user_in_no_lab_is_told_why_they_cannot_upload() -> None:
    client = Client()
    client.force_login(UserFactory())
    html = client.get(reverse("web:dataset_upload")).content.decode()
    assert 'id="upload-no-lab"' in html


def test_a_stored_file_gone_missing_is_said_not_a_500(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab, status=Dataset.Status.READY, original_filename="gone.csv")
    dataset.original_file.storage.delete(dataset.original_file.name)
    page = member_client.get(reverse("web:dataset_detail", args=[dataset.pk]))
    assert page.status_code == 200
    assert 'id="dataset-preview-error"' in page.content.decode()
    assert member_client.get(reverse("web:dataset_download", args=[dataset.pk])).status_code == 404


# --- fixing a dataset: a corrected mapping or policy is a new version of the same bytes -----------------

def test_uploading_the_same_bytes_with_a_corrected_mapping_makes_a_new_version(member_client, lab) -> None:
    first = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug, target_cols="", task=""))
    v1 = Dataset.objects.get(lab=lab, name="promoters")
    assert first.status_code == 302
    fixed = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug))
    v2 = Dataset.objects.get(lab=lab, name="promoters", version=2)
    assert fixed.url == reverse("web:dataset_detail", args=[v2.pk])
    assert v2.original_file.name == v1.original_file.name and v2.schema["target_cols"] == ["label"]
    said = [str(m) for m in get_messages(fixed.wsgi_request)]
    assert any("new version reading the stored bytes again" in m for m in said), said


def test_an_invalid_dataset_is_fixed_from_its_page_by_editing_the_mapping(member_client, member, lab) -> None:
    from django.core.files.base import ContentFile

    dataset = DatasetFactory(owner=member, lab=lab, name="assay", modality="dna", status=Dataset.Status.INVALID,
                             original_filename="assay.csv", original_file=ContentFile(CSV, name="assay.csv"),
                             schema={"target_cols": ["activity"]}, policy="strict",
                             validation_report={"status": "invalid", "error": {"message": "no target column 'activity'"},
                                                "problems": [], "totals": {"unreadable": 1}})
    page = member_client.get(reverse("web:dataset_detail", args=[dataset.pk])).content.decode()
    assert 'id="dataset-invalid"' in page and 'id="dataset-validating"' not in page
    assert 'id="remap-form"' in page and "<details open>" in page
    assert 'value="activity"' in page  # the form starts from the dataset's own mapping
    response = member_client.post(reverse("web:dataset_remap", args=[dataset.pk]),
                                  {"modality": "dna", "target_cols": "label", "policy": "skip", "task": ""})
    v2 = Dataset.objects.get(lab=lab, name="assay", version=2)
    assert response.status_code == 302 and response.url == reverse("web:dataset_detail", args=[v2.pk])
    assert (v2.schema, v2.policy, v2.status) == ({"target_cols": ["label"]}, "skip", Dataset.Status.UPLOADED)
    assert v2.original_file.name == dataset.original_file.name
    dataset.refresh_from_db()
    assert dataset.status == Dataset.Status.INVALID  # the old version stays as it was
    # the same reading again: nothing new, and the page says so
    again = member_client.post(reverse("web:dataset_remap", args=[dataset.pk]),
                               {"modality": "dna", "target_cols": "label", "policy": "skip", "task": ""})
    assert again.url == reverse("web:dataset_detail", args=[v2.pk]) and Dataset.objects.filter(lab=lab).count() == 2
    assert any("nothing new was stored" in str(m) for m in get_messages(again.wsgi_request))
    # a task of another modality is refused next to its field
    bad = member_client.post(reverse("web:dataset_remap", args=[dataset.pk]),
                             {"modality": "dna", "policy": "skip", "task": "molecule-regression"})
    assert bad.status_code == 400 and 'id="remap-error-task"' in bad.content.decode()


def test_a_viewer_gets_no_mapping_form_and_cannot_remap(lab) -> None:
    viewer = MembershipFactory(lab=lab, role=Membership.Role.VIEWER).user
    dataset = DatasetFactory(lab=lab, name="assay", status=Dataset.Status.INVALID)
    client = Client()
    client.force_login(viewer)
    assert 'id="remap-form"' not in client.get(reverse("web:dataset_detail", args=[dataset.pk])).content.decode()
    response = client.post(reverse("web:dataset_remap", args=[dataset.pk]), {"modality": "dna", "policy": "skip"})
    assert response.status_code == 400 and Dataset.objects.filter(lab=lab).count() == 1


def test_upload_checks_the_mapping_against_the_header_before_storing(member_client, lab) -> None:
    response = member_client.post(reverse("web:dataset_upload"), _upload_data(lab.slug, target_cols="activity"))
    html = response.content.decode()
    assert response.status_code == 400 and not Dataset.objects.exists()
    assert "&#x27;activity&#x27; is not in the file&#x27;s header (columns: sequence, label)" in html
    # a task whose default target the file lacks, and no target chosen
    no_label = SimpleUploadedFile("p.csv", b"sequence,active\nACGTACGT,1\n", content_type="text/csv")
    response = member_client.post(reverse("web:dataset_upload"),
                                  {**_upload_data(lab.slug, target_cols=""), "file": no_label})
    assert response.status_code == 400 and "choose the target column" in response.content.decode()


def test_upload_guesses_the_modality_when_none_is_chosen(member_client, lab) -> None:
    smiles = SimpleUploadedFile("sol.csv", b"mol,logS\nCCO,-0.3\nc1ccccc1O,-1.2\nCC(=O)O,0.1\n", content_type="text/csv")
    response = member_client.post(reverse("web:dataset_upload"),
                                  {**_upload_data(lab.slug, name="sol", modality="", target_cols="logS", task="",
                                                  input_cols=""), "file": smiles})
    dataset = Dataset.objects.get(name="sol")
    assert response.status_code == 302 and dataset.modality == "smiles"
    assert dataset.schema["input_cols"] == ["mol"]  # the guessed input column, since it is not the default name
    assert any("Modality guessed from the file" in str(m) for m in get_messages(response.wsgi_request))
    words = SimpleUploadedFile("w.csv", b"name,colour\nfoo,red\n", content_type="text/csv")
    refused = member_client.post(reverse("web:dataset_upload"),
                                 {**_upload_data(lab.slug, name="w", modality="", target_cols="", task="",
                                                 input_cols=""), "file": words})
    assert refused.status_code == 400 and "could not be told" in refused.content.decode()


def test_the_upload_page_asks_the_server_for_a_guess(member_client) -> None:
    response = member_client.post(reverse("web:dataset_guess") + "?filename=promoters.csv", CSV,
                                  content_type="application/octet-stream")
    assert response.json() == {"format": "csv", "columns": ["sequence", "label"], "modality": "dna",
                               "input_col": "sequence", "reason": "column 'sequence' holds dna sequences"}


def test_the_lab_choice_shows_its_slug(member_client, lab) -> None:
    html = member_client.get(reverse("web:dataset_upload")).content.decode()
    assert f"{lab.name} ({lab.slug})" in html


def test_the_pages_show_the_labs_slug_the_cli_takes(member_client, member, lab) -> None:
    dataset = DatasetFactory(owner=member, lab=lab)
    html = member_client.get(reverse("web:dataset_detail", args=[dataset.pk])).content.decode()
    assert 'id="dataset-lab-slug"' in html and f">{lab.slug}</span>" in html
    assert f'{lab.name} <span class="small text-body-secondary mono lab-slug">{lab.slug}</span>' in html  # lab menu
