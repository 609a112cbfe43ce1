"""Routes of these pages (included by portal/web/urls.py under the `web` namespace)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
