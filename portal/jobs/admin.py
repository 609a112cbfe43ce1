from django.contrib import admin

from portal.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["pk", "task_key", "profile_key", "lab", "owner", "status", "attempts", "progress", "created_at"]
    list_filter = ["status", "task_key", "profile_key", "device", "lab"]
    list_select_related = ["lab", "owner"]
    search_fields = ["name", "worker_hostname"]
    # The status changes only through portal.jobs.services (the state machine).
    readonly_fields = [
        "status", "attempts", "progress", "epoch", "step", "worker_hostname", "heartbeat_at",
        "error_message", "error_traceback", "started_at", "finished_at", "created_at", "updated_at", "config",
    ]
