"""`manage.py load_demo_data`: one demo dataset per task (real where a package ships real data,
otherwise labelled synthetic) uploaded into the demo lab through the normal upload service, so each
is validated by a worker like any upload. Running it again changes nothing (same bytes → same dataset).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlcore.columns import ColumnMapping
from portal.accounts.models import Lab, Visibility
from portal.datasets.services import dataset_create


class Command(BaseCommand):
    help = "Upload the demo datasets (one per task) into a lab; validation runs on a worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--lab", default="demo-lab", help="slug of the lab to load into")
        parser.add_argument("--user", default="demo", help="username of the uploading lab member")
        parser.add_argument("--only", nargs="*", default=None, help="demo dataset keys (default: all)")

    def handle(self, *args, lab: str, user: str, only: list[str] | None, **options) -> None:  # noqa: ANN002, ANN003
        # mlcore.demo_data is torch-free; it is imported here, in the command, not by the web process.
        from mlcore.demo_data import DEMO_DATASETS, demo_dataset_write

        lab_obj = Lab.objects.filter(slug=lab).first()
        if lab_obj is None:
            raise CommandError(f"no lab with slug {lab!r}; run `manage.py demo --setup-only` first")
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user {user!r}")
        keys = only or list(DEMO_DATASETS)
        unknown = sorted(set(keys) - set(DEMO_DATASETS))
        if unknown:
            raise CommandError(f"unknown demo datasets: {', '.join(unknown)}; valid: {', '.join(DEMO_DATASETS)}")
        with tempfile.TemporaryDirectory() as tmp:
            for key in keys:
                spec = DEMO_DATASETS[key]
                path = demo_dataset_write(key, Path(tmp))
                mapping = ColumnMapping(input_cols=[spec.input_col] if spec.input_col else [],
                                        target_cols=spec.target_cols, id_col=spec.id_col, group_col=spec.group_col,
                                        split_col=spec.split_col)
                schema = {
                    **mapping.to_dict(),
                    "task": spec.task_keys[0],
                    "demo": spec.metadata(),
                }
                description = f"{spec.description}\n\nProvenance: {spec.provenance}\nCitation: {spec.citation}\nLicence: {spec.licence}"
                with open(path, "rb") as fh:
                    dataset = dataset_create(
                        owner=owner, lab=lab_obj, name=spec.name, modality=spec.modality, file=File(fh),
                        filename=path.name, visibility=Visibility.LAB, description=description, schema=schema,
                    )
                verb = "already loaded" if dataset.deduplicated else "uploaded"
                self.stdout.write(f"{verb}: {dataset.name} v{dataset.version} ({spec.modality}, "
                                  f"{'synthetic' if spec.synthetic else 'real'}, {spec.n_records} records)")
        self.stdout.write(json.dumps({"datasets": len(keys)}))
