"""The CUDA paths of mlcore, run where a GPU exists (skipped elsewhere: the one kind of skip allowed).

What a worker on a GPU machine does with a job: train on `cuda` in float32, bf16 or fp16 with a
GradScaler, checkpoint and resume there, write attention maps and embeddings from the GPU model,
save a model that a CPU-only process loads, and apply every optimization profile to a GPU-trained
model (int8 is a CPU method: the profile takes the model to the CPU). The same toy task and tiny
encoder as test_trainer.py, and the same SYNTHETIC DNA data as test_compress.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcore.checkpoint import load_checkpoint
from mlcore.compress import PROFILE_IMPLS
from mlcore.modeldir import model_load
from mlcore.recipe import RecipeConfig, recipe_profile, recipe_run
from mlcore.trainer import TrainConfig, predict, resolve_device, resolve_precision
from tests.mlcore import synthetic
from tests.mlcore.test_compress import FAST as PROFILE_FAST, _dna_file
from tests.mlcore.test_trainer import FAST, TRAIN, VAL, Crash, Recorder, collate, fit, fresh_model, length

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

ROOT = Path(__file__).resolve().parents[2]


def _on_cuda(model: torch.nn.Module) -> bool:
    return all(p.device.type == "cuda" for p in model.parameters())


def test_auto_picks_the_gpu_and_its_precision() -> None:
    assert resolve_device("auto").type == "cuda"
    cuda = torch.device("cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    assert resolve_precision("auto", cuda) == (expected, False)
    assert resolve_precision("fp16", cuda) == (torch.float16, True)  # fp16 always with loss scaling


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_on_cuda_learns_in_each_precision(precision: str, tmp_path: Path) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = TrainConfig(epochs=6, patience=None, precision=precision, device="cuda", **FAST)
    result = fit(fresh_model(), config, TRAIN, VAL, checkpoint_dir=tmp_path)
    history = result.history
    assert all(np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"]) for row in history)
    assert history[-1]["train_loss"] < 0.6 * history[0]["train_loss"], history
    assert result.best_metrics["accuracy"] >= 0.85
    assert _on_cuda(result.model)
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # master weights stay fp32
    scaler = load_checkpoint(tmp_path)["scaler"]
    if precision == "fp16":
        # the GradScaler ran: its scale moved from the initial 2**16 as steps over/underflowed or grew
        assert scaler is not None and scaler["scale"] > 0
    else:
        assert scaler is None
    # predictions from the GPU model come back as CPU float32 arrays in dataset order
    preds = predict(model=result.model, dataset=VAL, collate=collate, length=length, batch_size=8, device="cuda",
                    precision=precision if precision != "fp16" else "fp32")
    assert len(preds) == len(VAL) and all(p.dtype == np.float32 and p.shape == (2,) for p in preds)


def test_resume_on_cuda_continues_the_same_run(tmp_path: Path) -> None:
    """A crash after epoch 2 and a resume end where an uninterrupted run ends. On the GPU the result
    agrees to float32 rounding (CUDA kernels need not be bit-reproducible); the history rows agree."""
    config = TrainConfig(epochs=4, patience=None, device="cuda", **FAST)
    full = fit(fresh_model(), config, TRAIN, VAL, checkpoint_dir=tmp_path / "full")
    with pytest.raises(Crash):
        fit(fresh_model(), config, TRAIN, VAL, checkpoint_dir=tmp_path / "run",
            callbacks=[Recorder(crash_after_epoch=2)])
    resumed = fit(fresh_model(seed=123), config, TRAIN, VAL, checkpoint_dir=tmp_path / "run",
                  resume_from=tmp_path / "run")
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(full.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)
        assert a["val_accuracy"] == pytest.approx(b["val_accuracy"], abs=1 / len(VAL) + 1e-9)
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, atol=2e-3, rtol=1e-3, msg=key)


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("cuda")
    config = RecipeConfig(task="dna-classification", data=_dna_file(work / "train.csv", 240, 0),
                          test_data=_dna_file(work / "test.csv", 64, 1), out=work / "run", preset="tiny",
                          hyperparameters={"epochs": 4, "seed": 0, "patience": 0}, explain_samples=4, device="cuda")
    return config, recipe_run(config)


def test_recipe_on_cuda_writes_metrics_explain_and_a_model_a_cpu_process_loads(gpu_run) -> None:
    config, run = gpu_run
    metrics = json.loads((config.out / "metrics.json").read_text())
    assert metrics["test"]["roc_auc"] > 0.8, metrics["test"]
    env = metrics["environment"]
    assert (env["device"], env["device_name"], env["cuda"]) == ("cuda", torch.cuda.get_device_name(), torch.version.cuda)
    assert run.explain is not None and (config.out / "explain").is_dir()
    # The saved model loads in a process that never sees the GPU, and predicts the same.
    seqs, _ = synthetic.dna(8, seed=7, length=40)
    on_gpu = model_load(run.model_dir, device="cuda").logits(seqs, device="cuda")
    code = (
        "import json, sys; from mlcore.modeldir import model_load; "
        "print(json.dumps([l.tolist() for l in model_load(sys.argv[1]).logits(json.loads(sys.argv[2]))]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(run.model_dir), json.dumps(seqs)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": "",
                                                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    on_cpu = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(on_cpu), np.stack(on_gpu), atol=1e-3)


@pytest.mark.parametrize("profile", list(PROFILE_IMPLS))
def test_every_profile_applies_to_a_gpu_trained_model(gpu_run, profile: str, tmp_path: Path) -> None:
    config, run = gpu_run
    report, optimized_dir = recipe_profile(config, run, profile=profile, out=tmp_path,
                                           options=PROFILE_FAST.get(profile, {}))
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["profile"] == profile and data["optimized"]["metrics"]["roc_auc"] is not None
    assert data["baseline"]["latency_ms_b32"] > 0 and data["optimized"]["latency_ms_b32"] > 0
    loaded = model_load(optimized_dir)  # on the CPU, as the portal's predict jobs load it
    seqs, _ = synthetic.dna(4, seed=9, length=40)
    assert len(loaded.predict(seqs)) == 4
    if profile == "mixed-precision":
        assert report.info.get("train_precision") in ("bf16", "fp16"), report.info
    # the same latency comparison on the job's GPU, except for int8 models (CPU only), which a note says
    if profile in ("int8", "compact"):
        assert data["gpu"] is None and any("CPU only" in n for n in data["notes"]), data["notes"]
    else:
        gpu = data["gpu"]
        assert gpu["device"] == torch.cuda.get_device_name()
        for side in ("baseline", "optimized"):
            assert gpu[side]["latency_ms_b1"] > 0 and gpu[side]["latency_ms_b32"] > 0
        assert gpu["speedup_b32"] > 0 and any(n.startswith("on the job's GPU") for n in data["notes"])
