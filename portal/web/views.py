"""Page views: load through selectors, render templates, hold no business logic.

This module: the home page, the lab switcher and the health check. Data pages live in
``views_data.py``, job pages in ``views_jobs.py``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from portal.accounts.models import Lab
from portal.datasets.selectors import dataset_list_for_user
from portal.jobs.models import Job
from portal.jobs.selectors import job_list_for_user
from portal.results.selectors import primary_metric
from portal.web.labs import current_lab, current_lab_set

ACTIVE = (Job.Status.QUEUED, Job.Status.RUNNING)
FINISHED = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)


def _primary_metric(job: Job) -> tuple[str, float | None]:
    """The job's primary metric (results.selectors.primary_metric) and its test value (None before a result)."""
    if job.status != Job.Status.SUCCEEDED:
        return "", None  # nothing measured: the page shows a dash
    metric = primary_metric(job)
    return metric.key, metric.value


def _running_jobs(request: HttpRequest) -> list[Job]:
    return list(job_list_for_user(user=request.user).filter(owner=request.user, status__in=ACTIVE)
                .order_by("-created_at", "-pk")[:20])


@login_required
def home(request: HttpRequest) -> HttpResponse:
    lab = current_lab(request)
    jobs = job_list_for_user(user=request.user)
    # Recent results: finished jobs of the current lab, plus the user's own wherever they ran.
    scope = Q(owner=request.user) | (Q(lab=lab) if lab is not None else Q(pk__in=[]))
    recent = list(jobs.filter(scope, status__in=FINISHED).select_related("result")
                  .order_by("-finished_at", "-pk")[:10])
    recent_rows = [{"job": job, "metric": _primary_metric(job)} for job in recent]
    datasets = dataset_list_for_user(user=request.user).filter(owner=request.user).defer("validation_report")[:5]
    context = {
        "lab": lab,
        "running_jobs": _running_jobs(request),
        "recent_rows": recent_rows,
        "my_datasets": list(datasets),
    }
    return render(request, "web/home.html", context)


@login_required
def home_jobs_json(request: HttpRequest) -> JsonResponse:
    """The home page's running jobs, for its progress bars to move without a reload."""
    return JsonResponse({"jobs": [
        {"id": job.pk, "status": job.status, "status_label": job.get_status_display(),
         "progress": round(job.progress * 100), "epoch": job.epoch, "step": job.step}
        for job in _running_jobs(request)
    ]})


@require_POST
@login_required
def lab_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the user's labs the current one; a lab they are not in is a 404."""
    try:
        lab = current_lab_set(request, slug=request.POST.get("lab", ""))
    except Lab.DoesNotExist:
        raise Http404("you are not a member of that lab") from None
    messages.info(request, f"Now working in {lab.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("web:home")
    return HttpResponseRedirect(target)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and the demo launcher: the process answers and the database too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
