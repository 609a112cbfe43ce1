"""Removal of work folders that no attempt will use again.

Each attempt trains in ``LABFORMER_WORK_DIR/job-<id>-a<attempt>-<random>`` (predictions in
``prediction-<id>-a<attempt>-<random>``) and removes it when it ends. An attempt whose process was
killed (SIGKILL, OOM, a machine reboot) never gets to: its folder, with a copy of the dataset and
checkpoints, would stay forever. ``work_dirs_sweep`` runs on the worker machine itself (where the
folders are) each time it starts an attempt, and removes every folder whose object is finished or
whose attempt no longer holds the lease (requeued, or a newer attempt runs). The folder of an attempt
that is running right now (this or another worker process on the machine) is kept.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from django.conf import settings

from portal.jobs.models import Job
from portal.results.models import Prediction
from workers.db_retry import db_retry

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(job|prediction)-(\d+)-a(\d+)-")
MODELS = {"job": Job, "prediction": Prediction}


def _live(kind: str, ids: set[int]) -> set[tuple[int, int]]:
    """(id, attempt) of the rows that are running: only their current attempt may keep a folder."""
    rows = MODELS[kind].objects.filter(pk__in=ids, status="running").values_list("pk", "attempts")
    return set(rows)


def work_dirs_sweep(root: Path | None = None) -> list[Path]:
    """Remove the work folders under ``root`` (``LABFORMER_WORK_DIR``) of finished objects and stale
    attempts; returns the folders removed."""
    root = Path(root or settings.LABFORMER_WORK_DIR)
    if not root.is_dir():
        return []
    found: dict[str, list[tuple[Path, int, int]]] = {"job": [], "prediction": []}
    for path in root.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir():
            found[match[1]].append((path, int(match[2]), int(match[3])))
    removed = []
    for kind, folders in found.items():
        if not folders:
            continue
        live = db_retry(_live, kind, {pk for _, pk, _ in folders}, what="the work folder sweep")
        for path, pk, attempt in folders:
            if (pk, attempt) not in live:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    if removed:
        log.info("removed %d work folder(s) of finished jobs or stale attempts: %s", len(removed),
                 ", ".join(p.name for p in removed[:10]))
    return removed
