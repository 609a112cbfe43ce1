"""The CLI contract, through a real subprocess: train writes model/ and metrics.json, predict writes one
row per record, bad input exits non-zero with one line naming file, line and reason (no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mlcore import synthetic

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mlcore", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    seqs, labels = synthetic.dna(160, seed=1)
    train = synthetic.write_csv(tmp / "train.csv", ["sequence", "label"], list(zip(seqs[:120], labels[:120])))
    test = synthetic.write_csv(tmp / "test.csv", ["sequence", "label"], list(zip(seqs[120:], labels[120:])))
    proc = run_cli("train", "--task", "dna-classification", "--data", train, "--test", test, "--preset", "tiny",
                   "--epochs", "4", "--seed", "0", "--out", tmp / "run")
    return tmp, test, proc


def test_train_writes_model_and_metrics(trained) -> None:
    tmp, _, proc = trained
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "train" in proc.stderr and "step" in proc.stderr  # the tqdm bar went to stderr
    assert "roc_auc" in proc.stdout and "test" in proc.stdout  # the final table
    metrics = json.loads((tmp / "run" / "metrics.json").read_text())
    assert metrics["task"] == "dna-classification"
    assert {"roc_auc", "pr_auc", "accuracy", "mcc"} <= set(metrics["test"])
    assert "roc_auc" in metrics["val"] and len(metrics["history"]) >= 1
    assert (tmp / "run" / "model" / "model.safetensors").exists()
    env = metrics["environment"]  # where it was trained: this test's machine has no GPU in CI
    assert env["device"] in ("cpu", "cuda") and env["precision"] == "fp32" and env["torch"] and env["threads"] >= 1
    assert env["world_size"] == 1 and (env["cuda"] is None) == (env["device"] == "cpu")


def test_predict_writes_one_row_per_record(trained) -> None:
    tmp, test, _ = trained
    proc = run_cli("predict", "--model", tmp / "run" / "model", "--data", test, "--out", tmp / "preds.csv")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp / "preds.csv").read_text().splitlines()
    assert lines[0] == "id,line,prediction,prob_0,prob_1" and len(lines) == 1 + 40
    first = lines[1].split(",")
    assert first[1] == "2" and first[2] in ("0", "1") and abs(float(first[3]) + float(first[4]) - 1) < 1e-4


def test_bad_input_names_file_line_and_reason(trained, tmp_path: Path) -> None:
    rows = [["ACGTACGT", 1], ["ACGTACGT", 0]] * 8
    rows[15] = ["ACGTQCGT", 1]  # file line 17 (the header is line 1)
    bad = synthetic.write_csv(tmp_path / "train.csv", ["sequence", "label"], rows)
    proc = run_cli("train", "--task", "dna-classification", "--data", bad, "--epochs", "1", "--out", tmp_path / "o")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: train.csv line 17: invalid nucleotide 'Q' at position 5 in column 'sequence'")
    assert "Traceback" not in proc.stderr

    model = trained[0] / "run" / "model"
    bad_pred = synthetic.write_csv(tmp_path / "new.csv", ["sequence"], [["ACGT"], ["AC GT"]])
    proc = run_cli("predict", "--model", model, "--data", bad_pred, "--out", tmp_path / "p.csv")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "new.csv line 3: invalid nucleotide ' ' at position 3 in column 'sequence'" in proc.stderr


def test_bad_target_and_unknown_task(tmp_path: Path) -> None:
    rows = [["ACGT", "1.5"]] * 6 + [["ACGT", "high"]]
    data = synthetic.write_csv(tmp_path / "reg.csv", ["sequence", "target"], rows)
    proc = run_cli("train", "--task", "dna-regression", "--data", data, "--out", tmp_path / "o")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "reg.csv line 8: non-numeric target 'high' in column 'target'" in proc.stderr
    proc = run_cli("train", "--task", "dna-clasification", "--data", data, "--out", tmp_path / "o")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown task 'dna-clasification'" in proc.stderr and "dna-classification" in proc.stderr


def test_folds_adds_a_cross_validation_of_the_non_test_records(tmp_path: Path) -> None:
    seqs, labels = synthetic.dna(120, seed=2)
    train = synthetic.write_csv(tmp_path / "train.csv", ["sequence", "label"], list(zip(seqs[:90], labels[:90])))
    test = synthetic.write_csv(tmp_path / "test.csv", ["sequence", "label"], list(zip(seqs[90:], labels[90:])))
    proc = run_cli("train", "--task", "dna-classification", "--data", train, "--test", test, "--preset", "tiny",
                   "--epochs", "3", "--seed", "0", "--folds", "3", "--no-progress", "--out", tmp_path / "run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3-fold cross-validation on 90 non-test records" in proc.stdout
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    cv = metrics["cv"]
    assert cv["k"] == 3 and cv["n_records"] == 90 and cv["primary_metric"] == "roc_auc"
    assert len(cv["folds"]) == 3 and len(cv["best_epochs"]) == 3
    aucs = [fold["roc_auc"] for fold in cv["folds"]]
    assert all(0.0 <= a <= 1.0 for a in aucs) and len(set(aucs)) > 1  # three different held-out folds
    assert cv["metrics"]["roc_auc"]["mean"] == pytest.approx(sum(aucs) / 3)
    assert metrics["n_train"] + metrics["n_val"] == 90 and metrics["n_test"] == 30  # the final run is unchanged

    bad = run_cli("train", "--task", "dna-classification", "--data", train, "--folds", "1", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "--folds must be at least 2" in bad.stderr


def test_train_writes_a_complete_manifest_of_its_outputs(trained) -> None:
    """DIR/manifest.json lists every file the run wrote, each with a role; the projection and the
    evaluation arrays (what the worker stores for the dashboards) are among them."""
    import numpy as np

    from mlcore.manifest import ROLES, manifest_check, manifest_read, manifest_units

    tmp, _, proc = trained
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp / "run"
    files = manifest_read(run)["files"]
    on_disk = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(files) == on_disk and manifest_check(run) == []
    assert all(entry["role"] in ROLES for entry in files.values())
    roles = {entry["role"] for entry in files.values()}
    assert {"model", "metrics", "projection", "evaluation", "predictions", "attention", "embeddings"} <= roles
    assert files["metrics.json"]["role"] == "metrics" and files["model/model.safetensors"]["role"] == "model"
    assert files["explain/projection.npz"]["meta"]["projection"]["n"] == 40
    with np.load(run / "explain" / "projection.npz") as npz:
        assert npz["pca"].shape == (40, 2)
    evaluation = files["evaluation.npz"]["meta"]
    assert evaluation["variant"] == "baseline" and evaluation["classes"] == ["0", "1"]
    metrics = json.loads((run / "metrics.json").read_text())
    with np.load(run / "evaluation.npz") as npz:
        assert abs(float((npz["y_true"] == npz["y_pred"]).mean()) - metrics["test"]["accuracy"]) < 1e-9
    # As a consumer stores them: the model directory is one unit, side files ride in their unit's metadata.
    units = {u.path: u for u in manifest_units(run)}
    assert units["model"].is_bundle and set(units["model"].files) == {f for f in files if f.startswith("model/")}
    assert "samples" in units["explain/attention.npz"].meta and "previews" in units["explain/embeddings.npy"].meta
    assert sorted(f for u in units.values() for f in u.files) == sorted(files)


def test_a_profile_run_lists_its_outputs_and_a_rerun_replaces_them(tmp_path: Path) -> None:
    """With --profile the optimized model, the report and the optimized evaluation arrays are listed;
    a second run into the same folder without a profile leaves none of them behind."""
    from mlcore.manifest import manifest_check, manifest_read

    seqs, labels = synthetic.dna(80, seed=2)
    data = synthetic.write_csv(tmp_path / "d.csv", ["sequence", "label"], list(zip(seqs, labels)))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")  # not the run's: left alone, and not listed
    args = ["train", "--task", "dna-classification", "--data", data, "--epochs", "1", "--no-progress",
            "--explain-samples", "0", "--out", tmp_path / "run"]
    proc = run_cli(*args, "--profile", "int8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = manifest_read(tmp_path / "run")["files"]
    assert files["report.json"] == {"role": "report", "meta": {"profile": "int8"}}
    assert files["evaluation-optimized.npz"]["meta"]["variant"] == "optimized"
    assert files["model-optimized/model.safetensors"]["role"] == "optimized_model"
    assert manifest_check(tmp_path / "run") == ["not listed: notes.txt"]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    roles = {e["role"] for e in manifest_read(tmp_path / "run")["files"].values()}
    assert "report" not in roles and "optimized_model" not in roles
    assert not (tmp_path / "run" / "model-optimized").exists() and not (tmp_path / "run" / "report.json").exists()
    assert manifest_check(tmp_path / "run") == ["not listed: notes.txt"]
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
