"""Data pages: the dataset list, upload, the dataset page (status, report, preview, versions, jobs),
download and delete; the API tokens page. Reads go through selectors, writes through services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from mlcore.catalog import MODALITIES, TASKS
from mlcore.guess import HEAD_BYTES, file_guess
from portal.accounts.models import APIToken, Membership
from portal.accounts.selectors import api_token_list_for_user, lab_list_for_user, membership_get
from portal.accounts.services import api_token_create, api_token_revoke
from portal.common.errors import ServiceError
from portal.dashboards.dataset_explorer import feature_rows
from portal.datasets import services as dataset_services
from portal.datasets.models import Dataset
from portal.datasets.selectors import dataset_get_for_user, dataset_list_for_user, dataset_preview
from portal.jobs.selectors import job_list_for_user
from portal.web.forms_data import APITokenForm, DatasetMappingForm, DatasetRemapForm, DatasetUploadForm
from portal.web.labs import current_lab

# Files larger than this go through the chunked, resumable upload API; smaller ones post with the form.
CHUNKED_THRESHOLD_BYTES = 8 * 1024**2
CHUNK_BYTES = 8 * 1024**2
PREVIEW_ROWS = 20
PROBLEMS_SHOWN = 500
FINAL_STATES = (Dataset.Status.READY, Dataset.Status.INVALID)


def _dataset_or_404(request: HttpRequest, pk: int) -> Dataset:
    try:
        return dataset_get_for_user(user=request.user, dataset_id=pk)
    except Dataset.DoesNotExist:
        raise Http404("no such dataset") from None


# --- list ---------------------------------------------------------------------------------------

@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = dataset_list_for_user(user=request.user).defer("validation_report")
    q = request.GET.get("q", "").replace("\x00", "").strip()
    modality = request.GET.get("modality", "")
    status = request.GET.get("status", "")
    lab_slug = request.GET.get("lab", "")
    mine = request.GET.get("mine") == "1"
    if q:
        datasets = datasets.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if modality in MODALITIES:
        datasets = datasets.filter(modality=modality)
    if status in Dataset.Status.values:
        datasets = datasets.filter(status=status)
    if lab_slug:
        datasets = datasets.filter(lab__slug=lab_slug)
    if mine:
        datasets = datasets.filter(owner=request.user)
    page = Paginator(datasets.order_by("-created_at", "-pk"), 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "filters": {"q": q, "modality": modality, "status": status, "lab": lab_slug, "mine": mine},
        "filtered": bool(q or modality in MODALITIES or status in Dataset.Status.values or lab_slug or mine),
        "query": query.urlencode(),
        "modalities": [(m.key, m.label) for m in MODALITIES.values()],
        "statuses": Dataset.Status.choices,
        "labs": lab_list_for_user(user=request.user).order_by("name"),
    }
    return render(request, "web/datasets/list.html", context)


# --- upload -------------------------------------------------------------------------------------

def _upload_context(request: HttpRequest, form: DatasetUploadForm) -> dict[str, Any]:
    """What the upload page's JavaScript needs: the modalities' column conventions, the tasks, and
    where the chunked upload API lives."""
    return {
        "form": form,
        "modality_info": {m.key: {"label": m.label, "input_format": m.input_format,
                                  "default_input_col": m.default_input_col,
                                  "element_fields": list(m.element_fields), "description": m.description}
                          for m in MODALITIES.values()},
        "task_info": {t.key: {"label": t.label, "modality": t.modality, "default_target_col": t.default_target_col}
                      for t in TASKS.values()},
        "upload_config": {
            "chunkedThreshold": CHUNKED_THRESHOLD_BYTES,
            "chunkBytes": CHUNK_BYTES,
            "maxBytes": settings.LABFORMER_MAX_UPLOAD_BYTES,
            "sessionsUrl": reverse("upload-list"),
            "datasetUrl": reverse("web:dataset_detail", args=[0]),
            "guessUrl": reverse("web:dataset_guess"),
            "guessBytes": HEAD_BYTES,
            "user": request.user.get_username(),
        },
    }


@login_required
def dataset_upload(request: HttpRequest) -> HttpResponse:
    labs = list(lab_list_for_user(user=request.user).order_by("name", "pk"))
    if request.method != "POST":
        lab = current_lab(request)
        form = DatasetUploadForm(labs=labs, initial={"lab": lab.slug if lab else None})
        return render(request, "web/datasets/upload.html", _upload_context(request, form))

    form = DatasetUploadForm(request.POST, request.FILES, labs=labs)
    if form.is_valid():
        data = form.cleaned_data
        upload = data["file"]
        try:
            dataset = dataset_services.dataset_create(
                owner=request.user, lab=next(lab for lab in labs if lab.slug == data["lab"]), name=data["name"],
                modality=data["modality"], file=upload, filename=upload.name, visibility=data["visibility"],
                description=data["description"], schema=form.mapping(), policy=data["policy"],
            )
        except ServiceError as exc:
            field = {"size_bytes": "file"}.get(exc.field or "", exc.field)
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            _version_message(request, dataset, verb="Uploaded")
            if form.guess_reason:
                messages.info(request, f"Modality guessed from the file: {dataset.modality_label} "
                                       f"({form.guess_reason}). If that is wrong, edit the mapping below.")
            return redirect("web:dataset_detail", dataset.pk)
    return render(request, "web/datasets/upload.html", _upload_context(request, form), status=400)


@require_POST
@login_required
def dataset_guess(request: HttpRequest) -> JsonResponse:
    """The upload page sends a file's first bytes while the user fills the form; the answer is the
    header, the first records' modality (mlcore.guess, the same rules the server applies on submit)."""
    head, guess = file_guess(request.body[:HEAD_BYTES], request.GET.get("filename", ""))
    return JsonResponse({
        "format": head.format, "columns": head.columns,
        "modality": guess.modality if guess else None, "input_col": guess.input_col if guess else None,
        "reason": guess.reason if guess else "",
    })


# --- one dataset --------------------------------------------------------------------------------

def _report_context(dataset: Dataset) -> dict[str, Any]:
    report = dataset.validation_report or {}
    problems = report.get("problems") or []
    totals = report.get("totals") or {}
    return {
        "report": report,
        "totals": sorted(totals.items(), key=lambda kv: -kv[1]),
        "problems": problems[:PROBLEMS_SHOWN],
        "problems_total": sum(totals.values()),
        "problems_more": max(0, len(problems) - PROBLEMS_SHOWN),
        "warnings": report.get("warnings") or [],
        "error": (report.get("error") or {}).get("message", ""),
        "features": feature_rows(report.get("stats")),
    }


def _version_message(request: HttpRequest, dataset: Dataset, *, verb: str) -> None:
    """Say what an upload or a mapping edit did: a new version (sharing stored bytes or not) or none."""
    if dataset.deduplicated:
        messages.info(request, f"{dataset} already reads these exact bytes with this mapping and policy: "
                               "nothing new was stored. Change the mapping or the policy to make a new version.")
    elif getattr(dataset, "reused_bytes", False):
        messages.success(request, f"{verb} {dataset}: a new version reading the stored bytes again "
                                  "(nothing was copied).")
    else:
        messages.success(request, f"{verb} {dataset}.")


def _detail_context(request: HttpRequest, dataset: Dataset, remap_form: DatasetRemapForm | None = None
                    ) -> dict[str, Any]:
    membership = membership_get(user=request.user, lab=dataset.lab)
    preview, preview_error = None, ""
    if dataset.status == Dataset.Status.READY or dataset.status == Dataset.Status.INVALID:
        try:
            preview = dataset_preview(dataset=dataset, rows=PREVIEW_ROWS)
        except (OSError, ValueError) as exc:  # a stored file gone missing or unreadable: say so, keep the page
            preview_error = f"the preview could not be read: {exc}"
    can_write = membership is not None and membership.can_write
    return {
        "dataset": dataset,
        "final": dataset.status in FINAL_STATES,
        "preview": preview,
        "preview_error": preview_error,
        "versions": dataset_list_for_user(user=request.user).filter(lab_id=dataset.lab_id, name=dataset.name)
        .defer("validation_report").order_by("-version"),
        "jobs": job_list_for_user(user=request.user).filter(dataset=dataset).order_by("-created_at", "-pk")[:50],
        "can_delete": dataset.owner_id == request.user.pk
        or (membership is not None and membership.role == Membership.Role.OWNER),
        "can_remap": can_write,
        "remap_form": remap_form or (DatasetRemapForm(initial=DatasetMappingForm.initial_from(dataset))
                                     if can_write else None),
        "modality": MODALITIES.get(dataset.modality),
        "schema": dataset.schema or {},
        **_report_context(dataset),
    }


@login_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _dataset_or_404(request, pk)
    return render(request, "web/datasets/detail.html", _detail_context(request, dataset))


@require_POST
@login_required
def dataset_remap(request: HttpRequest, pk: int) -> HttpResponse:
    """The dataset page's "Edit the mapping": a new version of the same stored bytes, validated again."""
    dataset = _dataset_or_404(request, pk)
    form = DatasetRemapForm(request.POST)
    if form.is_valid():
        try:
            version = dataset_services.dataset_remap(
                user=request.user, dataset=dataset, schema=form.mapping(), policy=form.cleaned_data["policy"],
                modality=form.cleaned_data["modality"],
            )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            _version_message(request, version, verb="Made")
            return redirect("web:dataset_detail", version.pk)
    return render(request, "web/datasets/detail.html", _detail_context(request, dataset, form), status=400)


@require_GET
@login_required
def dataset_status(request: HttpRequest, pk: int) -> JsonResponse:
    """The dataset's status, polled by its page while it validates."""
    dataset = _dataset_or_404(request, pk)
    return JsonResponse({"id": dataset.pk, "status": dataset.status, "status_label": dataset.get_status_display(),
                         "final": dataset.status in FINAL_STATES, "row_count": dataset.row_count})


@require_GET
@login_required
def dataset_download(request: HttpRequest, pk: int) -> FileResponse:
    """The original file, byte for byte, streamed after the access check."""
    dataset = _dataset_or_404(request, pk)
    try:
        handle = dataset.original_file.open("rb")
    except FileNotFoundError:
        raise Http404("the stored file is missing") from None
    return FileResponse(handle, as_attachment=True, filename=dataset.original_filename or "dataset",
                        content_type="application/octet-stream")


@login_required
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _dataset_or_404(request, pk)
    if request.method != "POST":
        return render(request, "web/datasets/delete.html", {"dataset": dataset, "n_jobs": dataset.jobs.count()})
    label = str(dataset)
    try:
        dataset_services.dataset_delete(user=request.user, dataset=dataset)
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("web:dataset_detail", dataset.pk)
    messages.success(request, f"Deleted {label}.")
    return redirect("web:dataset_list")


# --- API tokens ---------------------------------------------------------------------------------

# The session key holding a just-created token's secret until the page after the redirect shows it.
NEW_TOKEN_SESSION_KEY = "labformer_new_token"


@never_cache  # the response may hold a new secret: no cache keeps a copy
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    status = 200
    if request.method == "POST":
        form = APITokenForm(request.POST)
        if form.is_valid():
            try:
                token, secret = api_token_create(user=request.user, name=form.cleaned_data["name"],
                                                 expires_at=form.cleaned_data["expires_at"])
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                # Redirect after the POST, so a reload cannot create a second token; the secret waits in
                # the server-side session for that one page view and is removed as it is shown.
                request.session[NEW_TOKEN_SESSION_KEY] = secret
                messages.success(request, f"Created token “{token.name}”. Copy it now: it will not be shown again.")
                return redirect("web:token_list")
        status = 400
    else:
        form = APITokenForm()
    new_token = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    tokens = api_token_list_for_user(user=request.user)
    return render(request, "web/tokens/list.html",
                  {"form": form, "tokens": tokens, "new_token": new_token, "now": timezone.now()}, status=status)


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = api_token_revoke(user=request.user, token_id=pk)
    except APIToken.DoesNotExist:
        raise Http404("no such token") from None
    messages.success(request, f"Revoked token “{token.name}”. Scripts using it now get 401.")
    return redirect("web:token_list")
