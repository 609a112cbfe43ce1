"""Recipe -> model directory -> load -> predict gives identical predictions; explanation files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcore.modalities import RecordError
from mlcore.modeldir import model_load
from mlcore.recipe import RecipeConfig, recipe_run
from mlcore.trainer import predict
from tests.mlcore import synthetic


@pytest.fixture(scope="module")
def smiles_run(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("smiles")
    smiles, labels, _ = synthetic.molecules(64)
    data = synthetic.write_csv(tmp / "mols.csv", ["smiles", "label"], list(zip(smiles, labels)))
    config = RecipeConfig(task="molecule-classification", data=data, out=tmp / "run", split="scaffold",
                          hyperparameters={"epochs": 2, "augment": True, "val_frac": 0.2, "test_frac": 0.2},
                          device="cpu", explain_samples=3)
    return recipe_run(config), smiles


def test_save_load_predict_is_identical(smiles_run) -> None:
    result, smiles = smiles_run
    loaded = model_load(result.model_dir)
    assert loaded.task == "molecule-classification" and loaded.kind == "binary"
    examples = [loaded.featurizer.encode(s) for s in smiles]
    original = predict(model=result.model, dataset=examples, collate=lambda b: loaded.featurizer.collate(b),
                       length=loaded.featurizer.length, batch_size=16, device="cpu")
    again = loaded.logits(smiles, batch_size=16)  # same batches as above: same padding, same floats
    np.testing.assert_array_equal(np.stack(original), np.stack(again))
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, result.model.state_dict()[name].cpu()), name
    preds = loaded.predict(["CCO", "c1ccncc1"])
    assert set(preds[0]) == {"prediction", "probabilities"}
    assert preds[0]["prediction"] in ("0", "1") and sum(preds[0]["probabilities"].values()) == pytest.approx(1.0)


def test_loaded_model_validates_like_training(smiles_run) -> None:
    loaded = model_load(smiles_run[0].model_dir)
    with pytest.raises(RecordError, match="record 1: .*valence"):
        loaded.predict(["CCO", "C(C)(C)(C)(C)C"])


def test_model_directory_is_self_describing(smiles_run) -> None:
    model_dir = smiles_run[0].model_dir
    assert {p.name for p in model_dir.iterdir()} >= {"config.json", "featurizer.json", "targets.json",
                                                     "model.safetensors", "metrics.json"}
    config = json.loads((model_dir / "config.json").read_text())
    assert config["encoder"]["d_model"] == 64 and config["columns"]["input_col"] == "smiles"
    assert "[UNK]" in json.loads((model_dir / "featurizer.json").read_text())["vocab"]
    assert json.loads((model_dir / "targets.json").read_text())["classes"] == ["0", "1"]


def test_explanation_outputs(smiles_run) -> None:
    result, _ = smiles_run
    out = result.explain.directory
    samples = json.loads((out / "samples.json").read_text())
    arrays = np.load(out / "attention.npz")
    assert len(samples) == 3
    for s in samples:
        attn = arrays[f"attn_{s['key']}"]
        L = len(s["tokens"])
        assert attn.dtype == np.float16 and attn.shape == (2, 4, L, L)  # tiny: 2 layers x 4 heads
        np.testing.assert_allclose(attn.astype(np.float32).sum(-1), 1.0, atol=1e-2)
        rollout = arrays[f"rollout_{s['key']}"]
        assert rollout.shape == (L,) and rollout.sum() == pytest.approx(1.0, abs=1e-5)
        assert s["tokens"][0] == "[CLS]" and len(s["atom_index"]) == L
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (result.metrics["n_test"], 64)
    assert len(json.loads((out / "embeddings.json").read_text())["ids"]) == len(embeddings)


def test_regression_model_roundtrip_in_target_units(tmp_path: Path) -> None:
    rows, ys, _ = synthetic.tabular(40)
    data = synthetic.write_csv(tmp_path / "t.csv", ["x1", "x2", "site", "target"],
                               [[r["x1"], r["x2"], r["site"], y] for r, y in zip(rows, ys)])
    result = recipe_run(RecipeConfig(task="tabular-regression", data=data, out=tmp_path / "run",
                                     hyperparameters={"epochs": 2}, device="cpu", explain_samples=1))
    loaded = model_load(result.model_dir)
    assert loaded.featurizer.numeric == ["x1", "x2"]
    out = tmp_path / "p.csv"
    assert loaded.predict_file(data, out) == 40
    lines = out.read_text().splitlines()
    assert lines[0] == "id,line,prediction" and lines[1].split(",")[1] == "2"
    # Predictions come back in target units (de-standardized), so they sit in the targets' range.
    preds = np.asarray([float(line.split(",")[2]) for line in lines[1:]])
    targets = np.asarray([float(y) for y in ys])
    assert abs(preds.mean() - targets.mean()) < 2 * targets.std()
