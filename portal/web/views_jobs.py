"""Job pages: launch, job detail (with its live status, actions and downloads), catalog, compare.

Reads go through selectors (``job_get_for_user`` first, so another lab's private job is a 404 on
every page and action), writes through ``portal.jobs.services``; the views parse the request, map
service errors onto form fields and pick a template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from mlcore import catalog
from portal.common.errors import ServiceError
from portal.common.formatting import times_text
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.jobs.selectors import (
    catalog_facets, job_get_for_user, job_list_for_user, job_log_attempts, job_log_size, job_log_tail,
)
from portal.results.models import Artifact, MetricPoint, Result
from portal.results.selectors import (
    PRIMARY_METRIC_ROW_FIELDS,
    artifact_download,
    artifact_get_for_job,
    artifact_list_for_job,
    primary_metric,
    primary_metric_of_row,
)
from portal.web.forms_jobs import (
    CatalogFilterForm,
    JobLaunchForm,
    dataset_summary,
    hp_field_name,
    hp_initial,
    option_field_name,
    writable_labs_for_user,
)
from portal.web.labs import current_lab

LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 64 * 1024
CATALOG_PAGE_SIZE = 25
CATALOG_ROW_FIELDS = tuple(dict.fromkeys((
    "id", "name", "status", "progress", "task_key", "profile_key", "created_at", "owner__username", "dataset__name",
    "dataset__version", "result__baseline_metrics", "result__optimized_metrics", *PRIMARY_METRIC_ROW_FIELDS)))
COMPARE_MAX_JOBS = 10
# The artifacts a researcher downloads (checkpoints are the worker's resume points, not results).
DOWNLOADABLE_KINDS = [k for k in Artifact.Kind.values if k != Artifact.Kind.CHECKPOINT]
# job_submit's error fields -> the launch form's fields (anything else is shown above the form).
SERVICE_FIELDS = {"dataset": "dataset", "task": "task", "profile": "profile", "preset": "preset", "device": "device",
                  "gpu_count": "gpu_count", "visibility": "visibility", "lab": "lab", "budget": "budget",
                  "name": "name", "split": "split", "target_col": "target_col"}


def _job_or_404(request: HttpRequest, job_id: int) -> Job:
    try:
        return job_get_for_user(user=request.user, job_id=job_id)
    except Job.DoesNotExist:
        raise Http404(f"no job {job_id} that you can see") from None


def _result(job: Job) -> Result | None:
    try:
        return job.result
    except Result.DoesNotExist:
        return None


# --- launch -----------------------------------------------------------------------------------

def _clone_initial(job: Job, *, writable_lab_ids: set[int]) -> dict[str, Any]:
    """The launch form's values for Clone-and-edit: everything the job was submitted with."""
    config = job.config or {}
    initial: dict[str, Any] = {
        "dataset": job.dataset_id, "task": job.task_key, "profile": job.profile_key,
        "preset": config.get("preset", "tiny"), "device": job.device, "visibility": job.visibility,
        "name": job.name, "budget": config.get("budget"), "split": config.get("split", "random"),
        "gpu_count": job.gpu_count if job.device == Job.Device.GPU else None,
        "target_col": ",".join(config.get("target_cols") or []),
    }
    if job.lab_id in writable_lab_ids:
        initial["lab"] = job.lab_id
    for name, value in (config.get("overrides") or {}).items():
        if name in catalog.HYPERPARAMETERS:
            initial[hp_field_name(name)] = hp_initial(value)
    profile = catalog.PROFILES.get(job.profile_key)
    for name, value in (job.options or {}).items():
        if profile is not None and profile.option(name) is not None and name != "budget" and value is not None:
            initial[option_field_name(job.profile_key, name)] = hp_initial(value)
    return initial


@login_required
def job_launch(request: HttpRequest) -> HttpResponse:
    source_id = request.POST.get("clone_of") if request.method == "POST" else request.GET.get("clone")
    source = None
    if source_id:
        if not source_id.isdigit():
            raise Http404(f"clone={source_id!r} is not a job id")
        source = _job_or_404(request, int(source_id))
    extra_dataset = source.dataset_id if source else None
    labs = list(writable_labs_for_user(user=request.user))
    status = 200
    if request.method == "POST":
        form = JobLaunchForm(request.POST, user=request.user, extra_dataset_id=extra_dataset)
        if form.is_valid():
            d = form.cleaned_data
            try:
                job = job_services.job_submit(
                    user=request.user, dataset=d["dataset"], task_key=d["task"], profile_key=d["profile"],
                    preset=d["preset"], hyperparameters=d["hyperparameters"], device=d["device"],
                    gpu_count=d["gpu_count"] if d["device"] == Job.Device.GPU else None,
                    visibility=d["visibility"], name=d["name"], lab=d["lab"], budget=d["budget"],
                    split=d["split"] or "random", target_col=(d["target_col"] or "").strip() or None,
                    options=d["options"],
                )
            except ServiceError as exc:
                field = SERVICE_FIELDS.get(exc.field or "")
                if (exc.field or "").startswith("options."):  # the chosen profile's field for that option
                    field = option_field_name(d["profile"], exc.field.split(".", 1)[1])
                    field = field if field in form.fields else None
                form.add_error(field, exc.message)
            else:
                # Said in the past tense: the message stays on the page while the job moves on.
                messages.success(request, f"Job #{job.pk} was submitted.")
                return redirect("web:job_detail", job_id=job.pk)
        status = 400
    else:
        lab = current_lab(request)
        initial: dict[str, Any] = {"lab": lab.pk if lab and lab.pk in {x.pk for x in labs} else None}
        if source is not None:
            initial.update(_clone_initial(source, writable_lab_ids={x.pk for x in labs}))
        elif request.GET.get("dataset", "").isdigit():
            initial["dataset"] = int(request.GET["dataset"])
        form = JobLaunchForm(user=request.user, extra_dataset_id=extra_dataset, initial=initial)
        if "dataset" in initial and not form.fields["dataset"].queryset.filter(pk=initial["dataset"]).exists():
            messages.warning(request, f"Dataset {initial['dataset']} is not ready or not visible to you: choose another.")
            del form.initial["dataset"]
    chosen = form["dataset"].value()
    chosen_dataset = (form.fields["dataset"].queryset.filter(pk=chosen).first()
                      if chosen not in (None, "") and str(chosen).isdigit() else None)
    context = {
        "form": form, "source": source, "labs": labs,
        "chosen_summary": dataset_summary(chosen_dataset) if chosen_dataset else "",
        "has_datasets": form.fields["dataset"].queryset.exists(),
        "preset_defaults": {p: catalog.hyperparameter_defaults(p) for p in catalog.PRESETS},
        "tasks_info": {t.key: {"modality": t.modality, "description": t.description,
                               "primary_metric": t.primary_metric} for t in catalog.TASKS.values()},
    }
    return render(request, "web/jobs/launch.html", context, status=status)


# --- the job page -------------------------------------------------------------------------------

def _metric_rows(job: Job, result: Result | None) -> list[dict[str, Any]]:
    """Baseline vs optimized, the job's primary metric first (results.selectors.primary_metric: its
    resolved target kind's), then that kind's catalog metrics, then the rest."""
    if result is None:
        return []
    baseline, optimized = result.baseline_metrics or {}, result.optimized_metrics or {}
    primary = primary_metric(job)
    kind = catalog.TARGET_KINDS.get(primary.target_kind)
    order = [primary.key, *(kind.metrics if kind else ())] if primary.key else []
    names = list(dict.fromkeys([*order, *sorted(baseline), *sorted(optimized)]))
    rows = []
    for name in names:
        b, o = baseline.get(name), optimized.get(name)
        if not isinstance(b, (int, float)) and not isinstance(o, (int, float)):
            continue
        delta = o - b if isinstance(b, (int, float)) and isinstance(o, (int, float)) else None
        rows.append({"name": name, "baseline": b, "optimized": o, "delta": delta,
                     "primary": bool(primary.key and name == primary.key)})
    return rows


# How each report ratio reads (baseline over optimized, except parameters: optimized over baseline).
_faster = times_text
_smaller = partial(times_text, more="smaller", less="larger")


def _of_baseline(ratio: float) -> str:
    return f"{ratio:.2f}× of baseline"


def _report_options(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The profile options the report was made with, as (name, value) pairs ("-": the profile's choice)."""
    return [(name, "-" if value is None else hp_initial(value)) for name, value in (report.get("options") or {}).items()]


def _report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The compression report as rows: what the profile gained (size, speed) and lost (metric)."""
    if not report:
        return []
    b, o = report.get("baseline") or {}, report.get("optimized") or {}
    rows = [
        ("Size on disk", b.get("bytes"), o.get("bytes"), report.get("size_ratio"), "bytes", _smaller),
        ("Encoder weights", b.get("encoder_weight_bytes"), o.get("encoder_weight_bytes"),
         report.get("encoder_weight_ratio"), "bytes", _smaller),
        ("Parameters", b.get("params"), o.get("params"), report.get("params_ratio"), "count", _of_baseline),
        ("CPU latency, batch 1 (ms)", b.get("latency_ms_b1"), o.get("latency_ms_b1"), report.get("speedup_b1"), "ms",
         _faster),
        ("CPU latency, batch 32 (ms)", b.get("latency_ms_b32"), o.get("latency_ms_b32"), report.get("speedup_b32"),
         "ms", _faster),
        ("CPU throughput, batch 32 (records/s)", b.get("throughput_b32"), o.get("throughput_b32"), None, "rate", ""),
        ("Sparsity", b.get("sparsity"), o.get("sparsity"), None, "fraction", ""),
        ("Weights dtype", b.get("dtype"), o.get("dtype"), None, "text", ""),
    ]
    gpu = report.get("gpu") or {}
    if gpu:  # a GPU job: the same comparison on its GPU (int8 runs on the CPU only, so it has none)
        gb, go = gpu.get("baseline") or {}, gpu.get("optimized") or {}
        rows[5:5] = [
            (f"GPU latency, batch {bs} (ms, {gpu.get('device', 'GPU')})", gb.get(f"latency_ms_b{bs}"),
             go.get(f"latency_ms_b{bs}"), gpu.get(f"speedup_b{bs}"), "ms", _faster)
            for bs in (1, 32)
        ]
    return [{"label": label, "baseline": bv, "optimized": ov, "ratio": ratio, "unit": unit,
             "ratio_text": words(ratio) if ratio is not None else ""}
            for label, bv, ov, ratio, unit, words in rows if bv is not None or ov is not None]


def _environment_text(result: Result | None) -> str:
    """Where the model was trained, in one line (`Result.environment`); '' when not recorded."""
    env = (result.environment if result is not None else None) or {}
    if not env.get("device"):
        return ""
    device = str(env["device"]).upper() if env["device"] in ("cpu", "cuda") else str(env["device"])
    parts = [f"{device} ({env['device_name']})" if env.get("device_name") else device]
    if env.get("precision"):
        parts.append(str(env["precision"]))
    if env.get("torch"):
        parts.append(f"torch {env['torch']}" + (f", CUDA {env['cuda']}" if env.get("cuda") else ""))
    if isinstance(env.get("world_size"), int) and env["world_size"] > 1:
        parts.append(f"{env['world_size']} ranks")
    elif isinstance(env.get("threads"), int) and env["device"] == "cpu":
        parts.append(f"{env['threads']} thread{'s' if env['threads'] != 1 else ''}")
    return " · ".join(parts)


def _log_tail(artifact: Artifact | None) -> str:
    """The last lines of a stored log (read from its end: a long run's log can be large)."""
    if artifact is None:
        return ""
    try:
        with artifact.file.open("rb") as fh:
            if artifact.size_bytes > LOG_TAIL_BYTES:
                fh.seek(artifact.size_bytes - LOG_TAIL_BYTES)
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:  # storage lost the file: say so on the page rather than fail it
        return f"(the stored log {artifact.file.name} cannot be read: {exc.strerror or exc})"
    lines = text.splitlines()
    if artifact.size_bytes > LOG_TAIL_BYTES:
        lines = lines[1:]  # the first line was cut in the middle
    return "\n".join(lines[-LOG_TAIL_LINES:])


# An error message's list of values longer than this is cut to its first LIST_HEAD items and a count.
LIST_HEAD = 5
ERROR_SUMMARY_CHARS = 400
# A bracketed list ([...], (...), {...}) or a run of comma-separated items after a colon.
_LIST = re.compile(r"(?P<open>[\[({])(?P<items>[^\[\](){}]*,[^\[\](){}]*)(?P<close>[\])}])|(?<=: )(?P<run>[^,:\n]+(?:, [^,:\n]+){%d,})" % LIST_HEAD)


def error_summary(message: str) -> str:
    """`message` with every long list of values cut to its first items and a count, and the whole cut to
    ERROR_SUMMARY_CHARS: what a failed job's page shows above the full text (behind a toggle)."""

    def shorten(match: re.Match) -> str:
        if match.group("run") is not None:
            items, opening, closing = match.group("run").split(", "), "", ""
        else:
            items, opening, closing = match.group("items").split(","), match.group("open"), match.group("close")
        items = [i.strip() for i in items]
        if len(items) <= LIST_HEAD + 1:
            return match.group(0)
        return f"{opening}{', '.join(items[:LIST_HEAD])}, … ({len(items) - LIST_HEAD} more, {len(items)} in all){closing}"

    summary = _LIST.sub(shorten, message.strip())
    if len(summary) > ERROR_SUMMARY_CHARS:
        summary = summary[:ERROR_SUMMARY_CHARS].rstrip() + " …"
    return summary


def _log_text(job: Job, attempt: int | None = None) -> tuple[str, int | None, int]:
    """(the tail of the attempt's log, that attempt, the characters it logged so far).

    The log the worker streams while the attempt runs (`JobLog`); a job from before the stream has
    only the file stored when its attempt ended."""
    row = job_log_tail(job=job, attempt=attempt, max_chars=LOG_TAIL_BYTES)
    if row is not None:
        lines = row.text.splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:]), row.attempt, row.chars_total
    logs = [a for a in artifact_list_for_job(job=job).filter(kind=Artifact.Kind.LOG)
            if attempt is None or a.metadata.get("attempt") == attempt]
    latest = max(logs, key=lambda a: (a.created_at, a.pk)) if logs else None
    if latest is None:
        return "", None, 0
    return _log_tail(latest), latest.metadata.get("attempt"), latest.size_bytes


def _status_payload(job: Job) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    log_attempt, log_chars = job_log_size(job=job)
    return {
        "id": job.pk, "status": job.status, "status_label": job.get_status_display(), "finished": job.is_finished,
        "progress": job.progress, "percent": round(job.progress * 100), "epoch": job.epoch, "step": job.step,
        "phase": job.phase, "phase_index": job.phase_index, "phase_count": job.phase_count,
        "phase_text": job.phase_text if job.status == Job.Status.RUNNING else "",
        # What the page's log panel compares to know the log grew (then it fetches log_url).
        "log_attempt": log_attempt, "log_chars": log_chars,
        "attempts": job.attempts, "max_attempts": job.max_attempts, "worker": job.worker_hostname,
        "cancel_requested": job.cancel_requested, "created_at": iso(job.created_at), "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at), "heartbeat_at": iso(job.heartbeat_at), "error_message": job.error_message,
    }


@login_required
@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    result = _result(job)
    artifacts = list(artifact_list_for_job(job=job).filter(kind__in=DOWNLOADABLE_KINDS))
    log_tail, log_attempt, _ = _log_text(job)
    log_attempts = sorted(set(job_log_attempts(job=job)) | {
        a.metadata["attempt"] for a in artifacts if a.kind == Artifact.Kind.LOG and a.metadata.get("attempt")})
    metric_rows = _metric_rows(job, result)
    # Panels that cannot have data are left out: a job that failed before training has no curves,
    # one without stored embeddings no explanations.
    has_curves = not job.is_finished or MetricPoint.objects.filter(job=job).exists()
    has_explain = any(a.kind == Artifact.Kind.EMBEDDINGS for a in artifacts)
    task = catalog.TASKS.get(job.task_key)
    profile = catalog.PROFILES.get(job.profile_key)
    context = {
        "job": job, "result": result, "task": task, "profile": profile,
        "metric_rows": metric_rows, "environment_text": _environment_text(result),
        "has_curves": has_curves, "has_explain": has_explain,
        "show_results": bool(metric_rows) or job.status == Job.Status.SUCCEEDED,
        "error_summary": error_summary(job.error_message) if job.error_message else "",
        "report": (result.compression_report if result else None) or {},
        "report_rows": _report_rows((result.compression_report if result else None) or {}),
        "report_options": _report_options((result.compression_report if result else None) or {}),
        "artifacts": [{"artifact": a, "filename": a.file.name.rsplit("/", 1)[-1], "name": artifact_download(a)[0],
                       "label": artifact_download(a)[1]} for a in artifacts],
        "log_tail": log_tail, "log_attempt": log_attempt, "log_attempts": log_attempts,
        "log_url": reverse("web:job_log", args=[job.pk]),
        "config_json": json.dumps(job.config, indent=2, sort_keys=True, default=str),
        "status_url": reverse("web:job_status", args=[job.pk]),
    }
    return render(request, "web/jobs/detail.html", context)


def _signed_out_json(request: HttpRequest) -> JsonResponse | None:
    """A 401 in JSON for a feed polled by a script: a login page with 200 would read as a broken answer."""
    if request.user.is_authenticated:
        return None
    return JsonResponse({"detail": "Authentication required: sign in again to follow this job.",
                         "login_url": reverse("login")}, status=401)


@require_GET
def job_status(request: HttpRequest, job_id: int) -> JsonResponse:
    """What the job page polls while the job runs (static/js/job.js)."""
    return _signed_out_json(request) or JsonResponse(_status_payload(_job_or_404(request, job_id)))


@require_GET
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """The tail of an attempt's log as text (?attempt=N, default the latest): polled while the job runs."""
    signed_out = _signed_out_json(request)
    if signed_out is not None:
        return signed_out
    job = _job_or_404(request, job_id)
    attempt = request.GET.get("attempt", "")
    if attempt and not attempt.isdigit():
        raise Http404(f"attempt={attempt!r} is not an attempt number")
    text, shown, chars = _log_text(job, int(attempt) if attempt else None)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["X-Log-Attempt"] = str(shown or "")
    response["X-Log-Chars"] = str(chars)
    return response


@login_required
@require_POST
def job_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    try:
        job = job_services.job_cancel(job_id=job.pk, user=request.user)
    except ServiceError as exc:
        messages.error(request, f"Job #{job.pk} was not cancelled: {exc.message}")
    else:
        if job.status == Job.Status.CANCELLED:
            messages.success(request, f"Job #{job.pk} is cancelled.")
        else:
            messages.info(request, f"Job #{job.pk} is asked to stop; it ends at its next training step.")
    return redirect("web:job_detail", job_id=job.pk)


@login_required
@require_POST
def job_retry(request: HttpRequest, job_id: int) -> HttpResponse:
    """A new job with exactly the same configuration."""
    job = _job_or_404(request, job_id)
    try:
        new = job_services.job_clone(user=request.user, job=job)
    except ServiceError as exc:
        messages.error(request, f"Job #{job.pk} could not be retried: {exc.message}")
        return redirect("web:job_detail", job_id=job.pk)
    messages.success(request, f"Job #{new.pk} was submitted with the same settings as job #{job.pk}.")
    return redirect("web:job_detail", job_id=new.pk)


@login_required
@require_GET
def job_artifact_download(request: HttpRequest, job_id: int, artifact_id: int) -> FileResponse:
    job = _job_or_404(request, job_id)
    try:
        artifact = artifact_get_for_job(job=job, artifact_id=artifact_id)
    except Artifact.DoesNotExist:
        raise Http404(f"job {job.pk} has no artifact {artifact_id}") from None
    if artifact.kind not in DOWNLOADABLE_KINDS:
        raise Http404(f"artifact {artifact_id} is not downloadable")
    filename = artifact.file.name.rsplit("/", 1)[-1]
    try:
        stream = artifact.file.open("rb")
    except OSError:
        raise Http404(f"the file of artifact {artifact.pk} is missing from storage") from None
    return FileResponse(stream, as_attachment=True, filename=f"job{job.pk}-{artifact.kind}-{filename}",
                        content_type="application/octet-stream")


# --- catalog and compare --------------------------------------------------------------------

@login_required
@require_GET
def catalog_list(request: HttpRequest) -> HttpResponse:
    visible = job_list_for_user(user=request.user)
    form = CatalogFilterForm(request.GET, facets=catalog_facets(user=request.user, jobs=visible))
    jobs = form.filter_queryset(visible)
    # Plain rows of only the columns shown: no model instances, no config, tracebacks, validation
    # or compression reports (a dataset's report alone can be megabytes).
    page = Paginator(jobs.select_related(None).values(*CATALOG_ROW_FIELDS),
                     CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = _catalog_rows(page.object_list)
    total = page.paginator.count
    context = {
        "form": form, "page_obj": page, "rows": rows, "filters": form.active(),
        # The trade-offs panel plots the listed jobs (its ids are all it needs).
        "jobs": [row["id"] for row in page.object_list],
        "total": total, "any_visible": bool(total) or visible.exists(),
        "sort": form.sort_key(), "order": form.sort_order(),
        # Column headers sort by their column, flipping the direction of the current sort.
        "next_order": "asc" if form.sort_order() == "desc" else "desc",
    }
    return render(request, "web/catalog/list.html", context)


def _catalog_rows(jobs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The catalog table's cells as display strings, from plain rows (CATALOG_ROW_FIELDS), made here
    rather than in the template: per row, model instances and template filters (dates, numbers,
    an include per badge, a URL reverse) cost ~0.5 ms, a third of the page with 25 rows."""
    badges: dict[str, str] = {}  # one render per status, not per row
    detail_url = reverse("web:job_detail", args=[0]).rsplit("0/", 1)[0]  # .../jobs/<id>/
    rows = []
    for job in jobs:
        status = job["status"]
        if status not in badges:
            badges[status] = render_to_string("web/partials/status_badge.html", {
                "status": status, "label": Job.Status(status).label if status in Job.Status.values else status})
        task = catalog.TASKS.get(job["task_key"])
        primary = primary_metric_of_row(job)
        created = timezone.localtime(job["created_at"])
        rows.append({
            "id": str(job["id"]), "url": f"{detail_url}{job['id']}/", "name": job["name"] or "Job",
            "status": status, "badge": mark_safe(badges[status]),  # noqa: S308 - our template's output
            "percent": f"{round(job['progress'] * 100)}%" if status == Job.Status.RUNNING else "",
            "task": task.label if task else job["task_key"],
            "dataset": f"{job['dataset__name']} v{job['dataset__version']}",
            "profile": job["profile_key"], "owner": job["owner__username"], "metric": primary.key,
            "baseline": _metric_text(primary.value), "optimized": _metric_text(primary.optimized),
            "created_iso": created.isoformat(), "created": created.strftime("%Y-%m-%d %H:%M"),
        })
    return rows


def _metric_text(value: Any) -> str | None:
    """A metric as the catalog shows it (4 decimals, like floatformat:4), None when missing."""
    if value is None:
        return None
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys -> leaf values (lists stay whole)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _compare_ids(request: HttpRequest) -> list[int]:
    """Job ids from ``?jobs=1,2`` or ``?jobs=1&jobs=2``; a 404 names a value that is no id."""
    ids: list[int] = []
    for value in request.GET.getlist("jobs"):
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit():
                raise Http404(f"jobs: {part!r} is not a job id")
            if int(part) not in ids:
                ids.append(int(part))
    return ids


@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    ids = _compare_ids(request)
    if len(ids) > COMPARE_MAX_JOBS:
        messages.warning(request, f"Compare shows at most {COMPARE_MAX_JOBS} jobs; the first {COMPARE_MAX_JOBS} are shown.")
        ids = ids[:COMPARE_MAX_JOBS]
    jobs = [_job_or_404(request, job_id) for job_id in ids]
    results = {job.pk: _result(job) for job in jobs}
    # Config diff: a row per key of any job's config; `differs` when the jobs do not all agree. The
    # resolved hyperparameters say what ran; the raw overrides (what was typed) would repeat them.
    flat = [_flatten({"task": job.task_key, "profile": job.profile_key, "status": job.status,
                      **{k: v for k, v in (job.config or {}).items() if k != "overrides"}})
            for job in jobs]
    keys = sorted(set().union(*flat)) if flat else []
    missing = object()
    config_rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        shown = ["—" if v is missing else json.dumps(v, default=str) if not isinstance(v, str) else v for v in values]
        config_rows.append({"key": key, "values": shown, "differs": len({json.dumps(s) for s in shown}) > 1})
    # Metrics: every metric any job has, baseline and optimized side by side.
    metric_names: list[str] = []
    for job in jobs:
        primary = primary_metric(job)
        kind = catalog.TARGET_KINDS.get(primary.target_kind)
        metric_names += [primary.key, *(kind.metrics if kind else ())] if primary.key else []
        result = results[job.pk]
        if result:
            metric_names += sorted(result.baseline_metrics or {})
    metric_rows = []
    for name in dict.fromkeys(metric_names):
        cells = []
        for job in jobs:
            result = results[job.pk]
            b = (result.baseline_metrics or {}).get(name) if result else None
            o = (result.optimized_metrics or {}).get(name) if result else None
            cells.append({"baseline": b if isinstance(b, (int, float)) else None,
                          "optimized": o if isinstance(o, (int, float)) else None})
        if any(c["baseline"] is not None or c["optimized"] is not None for c in cells):
            metric_rows.append({"name": name, "cells": cells})
    context = {
        "jobs": jobs, "config_rows": config_rows, "metric_rows": metric_rows,
        "differing": sum(1 for r in config_rows if r["differs"]),
        "catalog_url": reverse("web:catalog"),
    }
    return render(request, "web/catalog/compare.html", context)

