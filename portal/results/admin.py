from django.contrib import admin

from portal.results.models import Artifact, Prediction, Result


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["job", "kind", "size_bytes", "created_at"]
    list_filter = ["kind"]


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ["job", "created_at"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["id", "job", "owner", "variant", "output", "status", "n_records", "attempts", "created_at"]
    list_filter = ["status", "output", "variant"]
    readonly_fields = ["records", "predictions", "error_records"]
