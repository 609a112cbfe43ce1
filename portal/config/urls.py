"""Top-level URL map: admin, auth, the web pages, the REST API and the Dash dashboards' endpoints."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("portal.api.urls")),
    path("django_plotly_dash/", include("django_plotly_dash.urls")),
    path("", include("portal.web.urls")),
]
