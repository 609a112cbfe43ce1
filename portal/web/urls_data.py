"""Routes of these pages (included by portal/web/urls.py under the `web` namespace)."""

from django.urls import URLPattern, path

from portal.web import views, views_data

urlpatterns: list[URLPattern] = [
    path("home/jobs.json", views.home_jobs_json, name="home_jobs"),
    path("labs/switch", views.lab_switch, name="lab_switch"),
    path("datasets/", views_data.dataset_list, name="dataset_list"),
    path("datasets/upload/", views_data.dataset_upload, name="dataset_upload"),
    path("datasets/upload/guess.json", views_data.dataset_guess, name="dataset_guess"),
    path("datasets/<int:pk>/", views_data.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/remap", views_data.dataset_remap, name="dataset_remap"),
    path("datasets/<int:pk>/status.json", views_data.dataset_status, name="dataset_status"),
    path("datasets/<int:pk>/download", views_data.dataset_download, name="dataset_download"),
    path("datasets/<int:pk>/delete", views_data.dataset_delete, name="dataset_delete"),
    path("tokens/", views_data.token_list, name="token_list"),
    path("tokens/<int:pk>/revoke", views_data.token_revoke, name="token_revoke"),
]
