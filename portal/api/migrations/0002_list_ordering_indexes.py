"""Indexes for the API's cursor pagination, which orders every job and dataset list by -created_at.

Without them PostgreSQL filters and sorts the whole visible table for each page (8 ms of a 20 ms
job list page with 10,000 jobs, bench/api.py); with them it walks the index and stops after one
page (0.3 ms). They live here because the ordering is the API's; they could move into the models'
Meta.indexes (same SQL) when those apps next change.
"""

from django.db import migrations

INDEXES = [
    ("jobs_job", "api_job_created_at_idx"),
    ("datasets_dataset", "api_dataset_created_at_idx"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("jobs", "0002_dispatch_and_time_limit"),
        ("datasets", "0002_upload_sessions"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {name} ON {table} (created_at DESC, id DESC)",
            reverse_sql=f"DROP INDEX IF EXISTS {name}",
        )
        for table, name in INDEXES
    ]
