from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0004_worker_seen'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='options',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
