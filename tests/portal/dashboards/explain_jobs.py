"""Jobs with real explanation artifacts for the explain dashboards' tests (not collected itself).

A tiny model is trained once per task and test session with the real mlcore recipe on SYNTHETIC data
(tests/mlcore/synthetic.py); each test then makes its own job row and stores the artifacts through
the worker's own code (``workers.runner.outputs_store``: what the run's manifest lists), exactly as a
finished job gets them.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rdkit import Chem

from portal.accounts.models import Visibility
from portal.jobs.models import Job
from tests.mlcore import synthetic
from tests.portal.factories import DatasetFactory, JobFactory, MembershipFactory

_ROOT = Path(tempfile.mkdtemp(prefix="labformer-explain-runs-"))
atexit.register(shutil.rmtree, _ROOT, True)
_RUNS: dict[tuple[str, str | None], Any] = {}

MODALITY = {"dna-classification": "dna", "dna-regression": "dna", "molecule-classification": "smiles",
            "residue-labeling": "protein", "jet-tagging": "particles", "tabular-classification": "tabular"}


def _data(task: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    if task == "dna-classification":
        seqs, labels = synthetic.dna(60)
        return synthetic.write_csv(folder / "d.csv", ["sequence", "label"], list(zip(seqs, labels))), {}
    if task == "dna-regression":
        seqs, targets = synthetic.dna_gc(60)
        return synthetic.write_csv(folder / "d.csv", ["sequence", "target"], list(zip(seqs, targets))), {}
    if task == "molecule-classification":
        smiles, labels, _ = synthetic.molecules(48)
        # Every other molecule written from its last atom: RDKit's canonical order differs from the input.
        written = [s if i % 2 else Chem.MolToSmiles(Chem.MolFromSmiles(s), canonical=False,
                                                    rootedAtAtom=Chem.MolFromSmiles(s).GetNumAtoms() - 1)
                   for i, s in enumerate(smiles)]
        return synthetic.write_csv(folder / "d.csv", ["smiles", "label"], list(zip(written, labels))), {}
    if task == "residue-labeling":
        seqs, labels = synthetic.protein_residues(40)
        return synthetic.write_csv(folder / "d.csv", ["sequence", "labels"], list(zip(seqs, labels))), {}
    if task == "jet-tagging":
        jets, labels = synthetic.jets(40)
        rows = [(f"jet{i}", *(f"{jet[k][j]:.5g}" for k in ("pt", "eta", "phi", "energy", "charge")), y)
                for i, (jet, y) in enumerate(zip(jets, labels)) for j in range(len(jet["pt"]))]
        header = ["object_id", "pt", "eta", "phi", "energy", "charge", "label"]
        return synthetic.write_csv(folder / "d.csv", header, rows), {}
    if task == "tabular-classification":
        rows, _, labels = synthetic.tabular(60)
        return synthetic.write_csv(folder / "d.csv", ["x1", "x2", "site", "label"],
                                   [[r["x1"], r["x2"], r["site"], y] for r, y in zip(rows, labels)]), {}
    raise AssertionError(task)


def trained_run(task: str, profile: str | None = None) -> Any:
    """The recipe's result for ``task`` (and optimization ``profile``), trained once per session."""
    key = (task, profile)
    if key not in _RUNS:
        from mlcore.recipe import RecipeConfig, recipe_run

        folder = _ROOT / f"{task}-{profile or 'baseline'}"
        folder.mkdir(parents=True, exist_ok=True)
        data, extra = _data(task, folder)
        _RUNS[key] = recipe_run(RecipeConfig(
            task=task, data=data, out=folder / "out", device="cpu", hyperparameters={"epochs": 2, "test_frac": 0.3},
            explain_samples=6, profile=profile, profile_options={}, **extra,
        ))
    return _RUNS[key]


def explained_job(task: str, *, profile: str | None = None, visibility: str = Visibility.LAB,
                  owner: Any = None, lab: Any = None) -> Job:
    """A succeeded job of ``task`` whose explanation artifacts the worker's code has stored."""
    from workers.runner import outputs_store

    run = trained_run(task, profile)
    if owner is None:
        member = MembershipFactory()
        owner, lab = member.user, member.lab
    dataset = DatasetFactory(owner=owner, lab=lab, modality=MODALITY[task])
    # Stored by its running first attempt (the worker's writes are fenced by the attempt), then finished.
    job = JobFactory(owner=owner, lab=lab, dataset=dataset, task_key=task, profile_key=profile or "baseline",
                     status=Job.Status.RUNNING, attempts=1, visibility=visibility)
    work = Path(tempfile.mkdtemp(prefix="job-", dir=_ROOT))
    outputs_store(job, run.out, work, roles={"attention", "embeddings", "projection", "predictions", "evaluation"})
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED)
    job.status = Job.Status.SUCCEEDED
    return job


# --- every callback of an app, through the real Dash endpoints ----------------------------------------


def callbacks(client: Any, app: str) -> list[dict[str, Any]]:
    """The app's callbacks as (outputs ["id.prop"], inputs ["id.prop"], state ["id.prop"])."""
    from tests.portal.dashboards import dashboard_client as dash

    out = []
    for dep in dash.dependencies(client, app):
        spec = dep["output"]
        outputs = spec.strip(".").split("...") if spec.startswith("..") else [spec]
        out.append({
            "outputs": outputs,
            "inputs": [f"{i['id']}.{i['property']}" for i in dep["inputs"]],
            "state": [f"{s['id']}.{s['property']}" for s in dep.get("state", [])],
        })
    return out


def _value(spec: str, job_id: Any, values: dict[str, Any]) -> Any:
    if spec in values:
        return values[spec]
    if spec == "store.data":
        return {"job_id": job_id}
    if spec.endswith(".n_clicks"):
        return 1
    return None


def call_every_callback(client: Any, app: str, job_id: Any, values: dict[str, Any]) -> list[tuple[list[str], Any]]:
    """POST every callback of ``app`` with the store pointing at ``job_id``; (outputs, parsed body) each."""
    from tests.portal.dashboards import dashboard_client as dash

    results = []
    for cb in callbacks(client, app):
        response = dash.update(
            client, app, outputs=cb["outputs"],
            inputs={k: _value(k, job_id, values) for k in cb["inputs"]},
            state={k: _value(k, job_id, values) for k in cb["state"]},
        )
        results.append((cb["outputs"], dash.response_props(response)))
    return results
