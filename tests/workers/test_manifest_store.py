"""The worker stores what the recipe's manifest lists, nothing else and nothing less.

The attempt runs in this process through the runner's own path (`_inputs_fetch`, `job_execute`) on a
work folder the test keeps, so the manifest the recipe wrote can be compared with the artifact rows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlcore.manifest import manifest_check, manifest_read, manifest_units
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, Result
from workers import runner

pytestmark = pytest.mark.django_db(transaction=True)


def _stored_name(artifact: Artifact) -> str:
    """The artifact's file name without the suffix storage adds to a name already taken."""
    name = artifact.file.name.rsplit("/", 1)[-1]
    return re.sub(r"_[A-Za-z0-9]{7}(?=\.[^.]+$)", "", name)


def test_the_stored_artifacts_are_exactly_the_manifests_files(broker, dna_dataset, tmp_path) -> None:  # noqa: ANN001
    dataset = dna_dataset()
    job = job_services.job_submit(user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny",
                                  profile_key="int8", hyperparameters={"epochs": 2, "patience": 0})
    job = job_services.job_start(job_id=job.pk, worker_hostname="test-manifest")
    job = Job.objects.select_related("dataset").get(pk=job.pk)
    work = tmp_path / "work"
    work.mkdir()
    config, resume_from = runner._inputs_fetch(job, work)
    status = runner.job_execute(job=job, config=config, resume_from=resume_from, work=work, log_path=work / "job.log")
    assert status == Job.Status.SUCCEEDED

    out = Path(config.out)
    assert manifest_check(out) == []
    files = manifest_read(out)["files"]
    roles = {entry["role"] for entry in files.values()}
    assert {"model", "optimized_model", "metrics", "report", "attention", "embeddings", "projection", "evaluation",
            "predictions"} <= roles
    # One artifact per unit of the manifest (a file, or a model directory zipped), of its role's kind,
    # with the manifest's metadata; besides them only the attempt's log and the last checkpoint.
    units = manifest_units(out)
    stored = list(Artifact.objects.filter(job=job).exclude(kind__in=[Artifact.Kind.LOG, Artifact.Kind.CHECKPOINT]))
    expected = sorted((runner.ROLE_KINDS[u.role], f"{Path(u.path).name}.zip" if u.is_bundle else Path(u.path).name)
                      for u in units)
    assert sorted((a.kind, _stored_name(a)) for a in stored) == expected
    by_name = {_stored_name(a): a for a in stored}
    for unit in units:
        name = f"{Path(unit.path).name}.zip" if unit.is_bundle else Path(unit.path).name
        extra = {"format": "mlcore model directory (zip)"} if unit.is_bundle else {}
        assert by_name[name].metadata == {**unit.meta, **extra}, name
    # Every file of the run is in a stored unit (side files as their unit's metadata).
    assert sorted(f for u in units for f in u.files) == sorted(files)
    assert set(Artifact.objects.filter(job=job).values_list("kind", flat=True)) - set(runner.ROLE_KINDS.values()) == set()
    result = Result.objects.get(job=job)
    assert result.compression_report["profile"] == "int8" and "roc_auc" in result.optimized_metrics
    assert by_name["evaluation-optimized.npz"].metadata["profile"] == "int8"
    assert by_name["model-optimized.zip"].metadata["variant"] == "optimized"
