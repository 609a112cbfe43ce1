"""Page views: load through selectors, render templates, hold no business logic."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from portal.accounts.selectors import lab_list_for_user
from portal.jobs.models import Job
from portal.jobs.selectors import job_list_for_user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    jobs = job_list_for_user(user=request.user)
    context = {
        "labs": lab_list_for_user(user=request.user),
        "running_jobs": jobs.filter(owner=request.user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])[:20],
        "recent_jobs": jobs.filter(status=Job.Status.SUCCEEDED).order_by("-finished_at")[:20],
    }
    return render(request, "web/home.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and the demo launcher: the process answers and the database too."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
