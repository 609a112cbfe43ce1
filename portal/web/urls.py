"""Page routes. Data pages (datasets, uploads, tokens, labs) and job pages (launch, job, catalog,
compare) keep their routes in their own modules so each can grow on its own."""

from django.urls import path

from portal.web import urls_data, urls_jobs, views

app_name = "web"
urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    *urls_data.urlpatterns,
    *urls_jobs.urlpatterns,
]
