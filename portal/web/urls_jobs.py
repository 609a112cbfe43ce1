"""Routes of the job pages: launch, job, catalog, compare (included by portal/web/urls.py under the
`web` namespace)."""

from django.urls import URLPattern, path

from portal.web import views_jobs

urlpatterns: list[URLPattern] = [
    path("jobs/new/", views_jobs.job_launch, name="job_launch"),
    path("jobs/<int:job_id>/", views_jobs.job_detail, name="job_detail"),
    path("catalog/", views_jobs.catalog, name="catalog"),
    path("catalog/compare/", views_jobs.compare, name="compare"),
]
