"""Top-level URL map: admin, auth, the web pages, the REST API and the Dash dashboards' endpoints."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django_plotly_dash.views import add_stateless_apps

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/", include("portal.api.urls")),
    # The library's maintenance view (registers every stateless app in the database) is served for
    # staff only; its own route, listed below, is never reached: the first match wins.
    path("django_plotly_dash/add_stateless_apps", staff_member_required(add_stateless_apps)),
    path("django_plotly_dash/", include("django_plotly_dash.urls")),
    path("", include("portal.web.urls")),
]
