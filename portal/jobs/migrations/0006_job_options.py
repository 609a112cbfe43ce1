from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0005_catalog_keys_without_choices'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='options',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
