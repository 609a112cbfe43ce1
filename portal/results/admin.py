from django.contrib import admin

from portal.results.models import Artifact, Result


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ["job", "kind", "size_bytes", "created_at"]
    list_filter = ["kind"]


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):
    list_display = ["job", "created_at"]
