"""Job pages: launch, job detail, catalog, compare. Reads go through selectors, writes through
services; the views only parse the request and pick a template."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from portal.jobs.models import Job
from portal.jobs.selectors import job_get_for_user, job_list_for_user


def _job_or_404(request: HttpRequest, job_id: int) -> Job:
    try:
        return job_get_for_user(user=request.user, job_id=job_id)
    except Job.DoesNotExist:
        raise Http404("no such job") from None


@login_required
def job_launch(request: HttpRequest) -> HttpResponse:
    return render(request, "web/jobs/launch.html", {})


@login_required
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    return render(request, "web/jobs/detail.html", {"job": _job_or_404(request, job_id)})


@login_required
def catalog(request: HttpRequest) -> HttpResponse:
    return render(request, "web/catalog/list.html", {"jobs": job_list_for_user(user=request.user)[:50]})


@login_required
def compare(request: HttpRequest) -> HttpResponse:
    ids = [int(part) for part in request.GET.get("jobs", "").split(",") if part.strip().isdigit()]
    jobs = [_job_or_404(request, job_id) for job_id in ids]
    return render(request, "web/catalog/compare.html", {"jobs": jobs})
