"""Routes of the job pages: launch, job (with its status feed, actions and downloads), catalog,
compare (included by portal/web/urls.py under the `web` namespace)."""

from django.urls import URLPattern, path

from portal.web import views_jobs

urlpatterns: list[URLPattern] = [
    path("jobs/new/", views_jobs.job_launch, name="job_launch"),
    path("jobs/<int:job_id>/", views_jobs.job_detail, name="job_detail"),
    path("jobs/<int:job_id>/status.json", views_jobs.job_status, name="job_status"),
    path("jobs/<int:job_id>/log.txt", views_jobs.job_log, name="job_log"),
    path("jobs/<int:job_id>/cancel/", views_jobs.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/retry/", views_jobs.job_retry, name="job_retry"),
    path("jobs/<int:job_id>/artifacts/<int:artifact_id>/download/", views_jobs.job_artifact_download,
         name="job_artifact_download"),
    path("catalog/", views_jobs.catalog_list, name="catalog"),
    path("catalog/compare/", views_jobs.compare, name="compare"),
]
