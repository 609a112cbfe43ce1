from django.contrib import admin

from portal.datasets.models import Dataset


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "lab", "owner", "modality", "status", "visibility", "row_count", "created_at"]
    list_filter = ["status", "modality", "visibility", "lab"]
    list_select_related = ["lab", "owner"]
    search_fields = ["name", "sha256"]
    # Status moves belong to the validation service, not to hand edits.
    readonly_fields = ["uid", "status", "sha256", "size_bytes", "row_count", "validation_report", "created_at", "updated_at"]
