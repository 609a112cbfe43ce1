"""DDP on CPU: two gloo processes train the toy task through `mlcore.trainer.train`.

The processes get the same environment variables torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), so `train` takes its real DDP path: process group, DDP wrapper, sharded
bucketed batches, gathered validation, rank-0-only callbacks and checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

from mlcore import catalog
from mlcore.checkpoint import CHECKPOINT_NAME, load_checkpoint
from mlcore.columns import ColumnMapping
from mlcore.distributed import cleanup
from mlcore.metrics import compute_metrics
from mlcore.trainer import TrainConfig
from tests.mlcore import synthetic
from tests.mlcore.test_trainer import FAST, TRAIN, VAL, Recorder, fit, fresh_model

WORLD = 2
EPOCHS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _evaluate(logits: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    # n proves the metrics cover the whole validation set, not one rank's shard.
    return {**compute_metrics("multiclass", labels, logits), "n": float(len(logits))}


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes on a 2-core machine
    recorder = Recorder()
    # Different initial weights per rank: DDP must broadcast rank 0's before training.
    result = fit(fresh_model(seed=rank), TrainConfig(epochs=EPOCHS, patience=None, device="cpu", **FAST), TRAIN, VAL,
                 evaluate=_evaluate, callbacks=[recorder], checkpoint_dir=Path(out_dir) / f"ckpt{rank}")
    torch.save({"state": result.model.state_dict(), "history": result.history, "best": result.best_metrics,
                "n_steps": len(recorder.steps), "n_checkpoints": len(recorder.checkpoints),
                "total_steps": recorder.starts[0].total_steps if recorder.starts else None},
               Path(out_dir) / f"rank{rank}.pt")
    # Leave the process group before exiting, as recipe_run does: a rank that exits with the group
    # alive can abort in gloo's teardown ("terminate called without an active exception", seen once
    # under a loaded full suite).
    cleanup()


def test_two_gloo_ranks_end_identical_and_learn(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))

    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    history = r0["history"]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    # Loss averaged over ranks, metrics decided on rank 0: every rank holds the same history (but time).
    assert [{k: v for k, v in h.items() if k != "time"} for h in history] == [
        {k: v for k, v in h.items() if k != "time"} for h in r1["history"]]
    assert r0["best"] == r1["best"] and r0["best"]["n"] == len(VAL) and r0["best"]["accuracy"] > 0.8

    # Each rank takes half of the batches; only rank 0 runs callbacks and writes checkpoints.
    steps_per_epoch = math.ceil(math.ceil(len(TRAIN) / FAST["batch_size"]) / WORLD)
    assert r0["total_steps"] == r0["n_steps"] == EPOCHS * steps_per_epoch
    assert r1["n_steps"] == 0 and r1["total_steps"] is None and r1["n_checkpoints"] == 0
    assert not (tmp_path / "ckpt1").exists()
    ckpt = load_checkpoint(tmp_path / "ckpt0" / CHECKPOINT_NAME)
    assert ckpt["world_size"] == WORLD and len(ckpt["rng"]) == WORLD
    # The two ranks drew different dropout streams (seed + rank).
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])


def test_the_cli_under_torchrun_trains_on_two_ranks_and_rank0_writes_the_run(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m mlcore train ...`, the way a user launches it: both ranks exit 0,
    rank 0 alone prints the table and writes DIR/ (the other rank used to fail on the missing test metrics).
    Four epochs, so the final weights are an average of epochs (a collective validation at the end)."""
    seqs, labels = synthetic.dna(160, seed=0, length=40)
    data = synthetic.write_csv(tmp_path / "data.csv", ["sequence", "label"], [[s, y] for s, y in zip(seqs, labels)])
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
         "-m", "mlcore", "train", "--task", "dna-classification", "--data", str(data), "--preset", "tiny",
         "--epochs", "4", "--set", "patience=0", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 only
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"roc_auc", "accuracy"} and len(metrics["history"]) == 4
    # The catalog's average_best: both ranks averaged the 2 best epochs and validated the average together.
    assert len(metrics["averaged_epochs"]) == 2
    assert (out / "model" / "model.safetensors").exists()


# --- every modality under two ranks -------------------------------------------------------------

# (task, how the test file is written): one task per modality, tabular with and without categorical
# columns and with categorical columns only. A parameter that gets no gradient in some modality's
# model makes DDP fail at the second step ("Expected to have finished reduction in the prior
# iteration", naming e.g. `stem.cat.weight`), so each rank takes at least two steps.
MODALITY_TASKS = ["dna-classification", "residue-labeling", "molecule-regression", "jet-tagging",
                  "lightcurve-classification", "tabular-classification", "tabular-numeric", "tabular-categorical"]


def _modality_file(name: str, path: Path) -> tuple[str, Path, list[str] | None]:
    """(catalog task, data file, target columns) for one entry of MODALITY_TASKS."""
    from tests.mlcore.test_recipe import _write_task_file

    if name == "dna-classification":
        seqs, labels = synthetic.dna(40, seed=0, length=40)
        return name, synthetic.write_csv(path, ["sequence", "label"], list(zip(seqs, labels))), None
    if name in ("tabular-numeric", "tabular-categorical"):
        rows, _, labels = synthetic.tabular(40)
        columns = ["x1", "x2"] if name == "tabular-numeric" else ["site"]
        if name == "tabular-categorical":  # a second categorical feature, so the offsets are exercised
            rows = [{**r, "band": "lo" if float(r["x1"]) < 0 else "hi"} for r in rows]
            columns = ["site", "band"]
        table = [[r[c] for c in columns] + [y] for r, y in zip(rows, labels)]
        return "tabular-classification", synthetic.write_csv(path, [*columns, "label"], table), None
    data, target_cols = _write_task_file(name, path)
    return name, data, target_cols


def _modality_worker(rank: int, port: int, out_dir: str) -> None:
    """Both ranks train every modality's tiny model for one epoch through the recipe's own pieces
    (setup, build, train), in one process group, and save the final weights of each."""
    from mlcore.recipe import RecipeConfig, build, setup, train_config
    from mlcore.taskmodel import collate_fn, evaluate_fn
    from mlcore.trainer import train

    os.environ.update(WORLD_SIZE=str(WORLD), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # two processes on a 2-core machine
    out = Path(out_dir)
    for name in MODALITY_TASKS:
        task, data, target_cols = _modality_file(name, out / f"{name}-{rank}.csv")
        config = RecipeConfig(task=task, data=data, out=out / name, columns=ColumnMapping(target_cols=target_cols), device="cpu",
                              hyperparameters={"epochs": 1, "batch_size": 8, "patience": 0, "average_best": 1})
        prep = setup(config)
        model = build(prep, "tiny")
        kind = prep.targets.kind
        meta = catalog.TARGET_KINDS[kind]
        result = train(model=model, train_set=prep.train, val_set=prep.val, collate=collate_fn(prep.featurizer, kind),
                       length=prep.featurizer.length, evaluate=evaluate_fn(prep.targets),
                       primary_metric=meta.primary_metric, greater_is_better=meta.greater_is_better,
                       config=train_config(prep.hyper, "cpu"))
        torch.save({"state": result.model.state_dict()},
                   out / f"{name}-rank{rank}.pt")
    cleanup()


def test_every_modality_trains_under_two_gloo_ranks(tmp_path: Path) -> None:
    """Each modality's model (tabular with and without categorical columns) trains under DDP and the
    two ranks end with identical weights: no parameter is left without a gradient."""
    context = mp.start_processes(_modality_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + 600  # generous: the machine may be loaded; a hang must still fail
    while not context.join(timeout=5):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError("the ranks did not finish in 600 s")
    for name in MODALITY_TASKS:
        r0, r1 = (torch.load(tmp_path / f"{name}-rank{r}.pt", weights_only=False) for r in range(WORLD))
        assert r0["state"].keys() == r1["state"].keys()
        for key in r0["state"]:
            assert torch.equal(r0["state"][key], r1["state"][key]), (name, key)


def test_tabular_without_categorical_columns_trains_under_torchrun(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m mlcore train` on a tabular file of numeric columns only, run from
    another directory (the issue's report: `stem.cat.weight` got no gradient)."""
    rows, _, labels = synthetic.tabular(80)
    synthetic.write_csv(tmp_path / "t.csv", ["x1", "x2", "label"],
                        [[r["x1"], r["x2"], y] for r, y in zip(rows, labels)])
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(WORLD),
         "-m", "mlcore", "train", "--task", "tabular-classification", "--data", "t.csv", "--preset", "tiny",
         "--epochs", "2", "--device", "cpu", "--no-progress", "--out", "ddp"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert metrics["environment"]["world_size"] == WORLD and len(metrics["history"]) == 2
    assert "stem.cat.weight" not in (tmp_path / "ddp" / "model" / "model.safetensors").read_bytes().decode("latin-1")


def test_a_tabular_model_saved_with_the_old_placeholder_table_still_loads() -> None:
    """Model directories written before the stem's categorical table became optional hold an unused
    one-row `cat.weight`; a stem without categorical features loads them strictly all the same."""
    from mlcore.modalities.tabular.featurizer import TabularStem

    stem = TabularStem(2, [], 8)
    old = {**stem.state_dict(), "cat.weight": torch.zeros(1, 8)}
    stem.load_state_dict(old)  # strict
    assert stem.cat is None and "cat.weight" not in stem.state_dict()
    with_cats = TabularStem(2, [3, 4], 8)
    assert with_cats.cat is not None and with_cats.cat.weight.shape == (7, 8)
