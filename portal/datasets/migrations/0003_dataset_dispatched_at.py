"""Dataset.dispatched_at: when the validation message reached the broker (NULL: not yet)."""

from django.db import migrations, models


def mark_existing_dispatched(apps, schema_editor) -> None:  # noqa: ANN001
    # Datasets uploaded before this field were sent at upload; only a dataset still `uploaded`
    # may have lost its message, and the sweep should send it.
    Dataset = apps.get_model("datasets", "Dataset")
    Dataset.objects.exclude(status="uploaded").update(dispatched_at=models.F("created_at"))


class Migration(migrations.Migration):
    dependencies = [("datasets", "0002_upload_sessions")]

    operations = [
        migrations.AddField(
            model_name="dataset", name="dispatched_at", field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(mark_existing_dispatched, migrations.RunPython.noop),
    ]
