"""Fixtures for the prediction tests: a tiny model trained once per session by the mlcore recipe (the one
the worker's runner runs), stored as a finished job's model artifacts, and real Celery workers."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from portal.accounts.models import Membership
from portal.accounts.services import api_token_create
from portal.jobs.models import Job
from portal.results.models import Artifact
from portal.results.services import artifact_create
from tests.portal.factories import DatasetFactory, JobFactory
from tests.workers.conftest import broker, planted_motif_csv, start_worker, worker_env  # noqa: F401 - fixtures reused


def token_client(user=None) -> APIClient:  # noqa: ANN001
    """An API client holding a fresh personal token of ``user`` (anonymous without one)."""
    client = APIClient()
    if user is not None:
        _, secret = api_token_create(user=user, name="test")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@dataclass(frozen=True)
class TrainedModel:
    baseline_zip: Path
    optimized_zip: Path
    baseline_dir: Path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A tiny DNA classifier (planted motif, one epoch) and its int8 version, as the runner stores them."""
    from mlcore.recipe import RecipeConfig, recipe_run

    root = tmp_path_factory.mktemp("trained")
    data = root / "motif.csv"
    data.write_bytes(planted_motif_csv(64, length=40))
    result = recipe_run(RecipeConfig(
        task="dna-classification", data=data, out=root / "out", preset="tiny", profile="int8", device="cpu",
        hyperparameters={"epochs": 1, "patience": 0, "batch_size": 16}, explain_samples=0,
    ))
    return TrainedModel(
        baseline_zip=Path(shutil.make_archive(str(root / "model"), "zip", result.model_dir)),
        optimized_zip=Path(shutil.make_archive(str(root / "model-optimized"), "zip", result.optimized_dir)),
        baseline_dir=result.model_dir,
    )


@pytest.fixture
def finished_job(trained_model: TrainedModel) -> Callable[..., Job]:
    """A succeeded job of ``membership``'s lab holding the trained model (and, unless told, its optimized one)."""

    def _make(membership: Membership, *, optimized: bool = True, **fields: object) -> Job:
        dataset = DatasetFactory(owner=membership.user, lab=membership.lab, modality="dna")
        job = JobFactory(owner=membership.user, lab=membership.lab, dataset=dataset, task_key="dna-classification",
                         profile_key="int8" if optimized else "baseline",
                         **{"status": Job.Status.SUCCEEDED, "progress": 1.0, **fields})
        artifact_create(job_id=job.pk, kind=Artifact.Kind.MODEL, path=trained_model.baseline_zip,
                        metadata={"format": "mlcore model directory (zip)"})
        if optimized:
            artifact_create(job_id=job.pk, kind=Artifact.Kind.MODEL, path=trained_model.optimized_zip,
                            metadata={"format": "mlcore model directory (zip)", "variant": "optimized",
                                      "profile": "int8"})
        return job

    return _make
