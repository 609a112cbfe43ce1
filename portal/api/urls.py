"""REST API routes: /api/v1/..., the OpenAPI schema and Swagger UI (assets served locally)."""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from portal.api import views

router = DefaultRouter()
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("uploads", views.UploadSessionViewSet, basename="upload")
router.register("jobs", views.JobViewSet, basename="job")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("tokens", views.APITokenViewSet, basename="token")

urlpatterns = [
    path("v1/tasks/", views.CatalogTasks.as_view(), name="api-tasks"),
    path("v1/profiles/", views.CatalogProfiles.as_view(), name="api-profiles"),
    path("v1/presets/", views.CatalogPresets.as_view(), name="api-presets"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Last: any other /api/ path (an unknown route, /jobs/abc/) is the API's JSON 404, not a page.
    re_path(r"", views.not_found),
]
