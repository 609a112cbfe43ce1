"""The SMILES featurizer's [FP] token (Morgan count fingerprint, optional descriptors; smiles.py).

Featurizer level: shapes, determinism, the same fingerprint for every SMILES of a molecule (checked
against RDKit's older hashed-Morgan API, not the code under test), the state round trip and an old
state without the option. Model level: the [FP] token after the padding leaves a record's output
independent of its batch, a tiny model with the option overfits 32 molecules, and one tiny recipe run
goes through explanation (token labels, atom map), the model directory and the int8 profile.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlcore import catalog
from mlcore.columns import ColumnMapping
from mlcore.data import TargetEncoder
from mlcore.modalities import RecordError, featurizer_build, featurizer_from_state
from mlcore.modalities.sequence import SequenceStem
from mlcore.modalities.smiles.featurizer import DESCRIPTORS, FP_LABEL, FingerprintStem, smiles_atom_index, smiles_parse
from mlcore.model import encoder_tiny
from mlcore.modeldir import model_load, model_save
from mlcore.recipe import RecipeConfig, recipe_profile, recipe_run
from mlcore.taskmodel import collate_fn, featurizer_for_task, model_build
from tests.mlcore import synthetic
from tests.mlcore.test_overfit import overfit

PARACETAMOL = "CC(=O)Nc1ccc(O)cc1"
TRAIN = [PARACETAMOL, "CCO", "c1ccccc1O", "CCN(CC)CC", "OC(=O)c1ccccc1", "Clc1ccc(Br)cc1", "C1CCNCC1"]


def rdkit_counts(smiles: str) -> np.ndarray:
    """Dense (2048,) Morgan radius-2 counts through RDKit's legacy hashed-fingerprint function."""
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    fp = rdMolDescriptors.GetHashedMorganFingerprint(Chem.MolFromSmiles(smiles), 2, nBits=2048)
    dense = np.zeros(2048)
    for bit, count in fp.GetNonzeroElements().items():
        dense[bit] = count
    return dense


def dense(example: dict) -> np.ndarray:
    out = np.zeros(2048)
    out[example["fp_index"]] = np.expm1(example["fp_value"])  # stored as log(1 + count)
    return out


def test_fingerprint_token_shapes_and_labels() -> None:
    f = featurizer_build("smiles", fingerprint=True).fit(TRAIN)
    ex = f.encode(PARACETAMOL)
    n = len(ex["tokens"])
    assert f.length(ex) == n + 1
    assert f.token_labels(ex) == [*ex["text"], FP_LABEL]
    np.testing.assert_allclose(dense(ex), rdkit_counts(PARACETAMOL), atol=1e-4)
    # the atom map is over the SMILES tokens only and unchanged by the option
    assert ex["atom_index"].tolist() == smiles_atom_index(ex["text"]).tolist()
    batch = f.collate([ex, f.encode("CCO")])
    assert batch["tokens"].shape == (2, n) and batch["fp"].shape == (2, 2048)
    stem = f.stem(32, 4)
    assert isinstance(stem, FingerprintStem)
    x, pad_mask, bias = stem(**batch)
    assert x.shape == (2, n + 1, 32) and bias is None
    # "CCO" is 3 tokens: its padding lies between the SMILES tokens and its [FP] token, which is real
    assert pad_mask[1].tolist() == [True] * 3 + [False] * (n - 3) + [True]
    assert pad_mask[0].all()


def test_fingerprint_is_deterministic_and_the_molecules_not_the_strings() -> None:
    f = featurizer_build("smiles", fingerprint=True).fit(TRAIN)
    first, again = f.encode(PARACETAMOL), f.encode(PARACETAMOL)
    np.testing.assert_array_equal(first["fp_index"], again["fp_index"])
    np.testing.assert_array_equal(first["fp_value"], again["fp_value"])
    texts = set()
    for seed in range(12):  # randomized SMILES (augmentation): other strings, the same fingerprint
        ex = f.encode(PARACETAMOL, rng=np.random.default_rng(seed))
        texts.add(ex["smiles"])
        np.testing.assert_array_equal(ex["fp_index"], first["fp_index"])
        np.testing.assert_array_equal(ex["fp_value"], first["fp_value"])
    assert len(texts) > 3
    # another molecule, another fingerprint
    assert not np.array_equal(dense(f.encode("CCN(CC)CC")), dense(first))


def test_state_round_trip_and_an_old_state_without_the_option() -> None:
    f = featurizer_build("smiles", fingerprint=True, descriptors=True).fit(TRAIN)
    state = json.loads(json.dumps(f.state()))  # as featurizer.json stores it
    g = featurizer_from_state("smiles", state)
    a, b = f.encode(PARACETAMOL), g.encode(PARACETAMOL)
    for key in ("tokens", "fp_index", "fp_value", "desc"):
        np.testing.assert_array_equal(a[key], b[key])
    assert g.token_labels(b)[-1] == FP_LABEL and g.descriptors == list(DESCRIPTORS)
    # a featurizer.json written before the option existed: no [FP] token, the plain stem
    old = {k: state[k] for k in ("max_len", "conv_kernel", "min_count", "vocab")}
    h = featurizer_from_state("smiles", old)
    ex = h.encode(PARACETAMOL)
    assert "fp_index" not in ex and h.length(ex) == len(ex["tokens"]) and FP_LABEL not in h.token_labels(ex)
    assert type(h.stem(32, 4)) is SequenceStem and set(h.collate([ex])) == {"tokens"}


def test_descriptors_are_standardized_on_the_training_records() -> None:
    f = featurizer_build("smiles", fingerprint=True, descriptors=True).fit(TRAIN)
    desc = np.stack([f.encode(s)["desc"] for s in TRAIN])
    assert desc.shape == (len(TRAIN), len(DESCRIPTORS))
    np.testing.assert_allclose(desc.mean(axis=0), 0.0, atol=1e-5)
    assert f.collate([f.encode("CCO")])["desc"].shape == (1, len(DESCRIPTORS))
    with pytest.raises(ValueError, match="fingerprint=True"):
        featurizer_build("smiles", descriptors=True)


def test_fp_dropout_only_while_training_and_saved() -> None:
    f = featurizer_build("smiles", fingerprint=True, fp_dropout=0.5).fit(TRAIN)
    assert featurizer_from_state("smiles", json.loads(json.dumps(f.state()))).fp_dropout == 0.5
    torch.manual_seed(0)
    stem = f.stem(16, 2)
    batch = f.collate([f.encode(PARACETAMOL)])
    stem.train()
    first, second = stem(**batch)[0][0, -1], stem(**batch)[0][0, -1]  # the [FP] token, two dropout draws
    assert not torch.equal(first, second)
    stem.eval()
    torch.testing.assert_close(stem(**batch)[0], stem(**batch)[0])
    tokens_only = stem(**batch)[0][0, :-1]
    stem.train()  # the SMILES tokens themselves are untouched by the fingerprint's dropout
    torch.testing.assert_close(stem(**batch)[0][0, :-1], tokens_only)


def test_fp_token_counts_towards_max_len() -> None:
    smiles = "CCCCCCCC"
    assert featurizer_build("smiles", max_len=8).fit([smiles]).encode(smiles)
    with pytest.raises(RecordError, match=r"8 tokens plus the \[FP\] token is longer than max_len 8"):
        featurizer_build("smiles", max_len=8, fingerprint=True).fit([smiles]).encode(smiles)


def test_the_option_is_a_hyperparameter_on_by_default_for_molecule_tasks() -> None:
    assert catalog.HYPERPARAMETERS["fingerprint"].type == "bool"
    assert catalog.hyperparameter_defaults("small")["fingerprint"] is True
    for task in ("molecule-regression", "molecule-classification"):
        f = featurizer_for_task(task)
        assert f.fingerprint and f.descriptors == list(DESCRIPTORS)
    off = featurizer_for_task("molecule-regression", fingerprint=False)
    assert not off.fingerprint and not off.descriptors
    assert not hasattr(featurizer_for_task("dna-classification", fingerprint=True), "fingerprint")


def test_a_records_output_does_not_depend_on_its_batch() -> None:
    """[FP] sits after the padding: a short molecule padded next to a long one predicts the same."""
    torch.manual_seed(0)
    f = featurizer_build("smiles", fingerprint=True, descriptors=True).fit(TRAIN)
    model = model_build(f, encoder_tiny(max_len=f.max_len), "regression", 1).eval()
    examples = [f.encode(s) for s in TRAIN]
    together = model(**f.collate(examples)).logits
    for i, ex in enumerate(examples):
        alone = model(**f.collate([ex])).logits
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("descriptors", [False, True])
def test_tiny_model_with_the_fp_token_overfits_32_molecules(descriptors: bool) -> None:
    smiles, labels, _ = synthetic.molecules(32)
    loss, m = overfit("molecule-classification", smiles, labels, epochs=20, kind="binary", fingerprint=True,
                      descriptors=descriptors)
    assert loss < 0.05 and m["accuracy"] == 1.0, (loss, m)


@pytest.fixture(scope="module")
def fp_run(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("fp")
    smiles, _, targets = synthetic.molecules(64)
    data = synthetic.write_csv(tmp / "mols.csv", ["smiles", "atoms"], [[s, t[0]] for s, t in zip(smiles, targets)])
    config = RecipeConfig(task="molecule-regression", data=data, out=tmp / "run", preset="tiny",
                          columns=ColumnMapping(target_cols=["atoms"]), hyperparameters={"epochs": 2, "augment": True, "seed": 0},
                          device="cpu", explain_samples=3)
    return config, recipe_run(config), smiles


def test_explanation_labels_fp_and_keeps_the_atom_map(fp_run) -> None:
    _, result, _ = fp_run
    out = result.explain.directory
    samples = json.loads((out / "samples.json").read_text())
    arrays = np.load(out / "attention.npz")
    assert samples
    for s in samples:
        L = len(s["tokens"])
        assert arrays[f"attn_{s['key']}"].shape[-1] == L and len(s["atom_index"]) == L
        assert s["tokens"][0] == "[CLS]" and s["tokens"][-1] == FP_LABEL
        assert s["atom_index"][0] == -1 and s["atom_index"][-1] == -1
        # the SMILES tokens keep their atoms: atom k is the k-th atom token, as without the option
        assert s["atom_index"][1:-1] == smiles_atom_index(s["tokens"][1:-1]).tolist()
        assert [a for a in s["atom_index"] if a >= 0] == list(range(smiles_parse(s["smiles"]).GetNumAtoms()))


def test_model_directory_round_trip_and_int8(fp_run, tmp_path: Path) -> None:
    config, result, smiles = fp_run
    loaded = model_load(result.model_dir)
    assert loaded.featurizer.fingerprint and isinstance(loaded.model.stem, FingerprintStem)
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor.cpu(), loaded.model.state_dict()[name]), name
    before = loaded.predict(smiles[:5])
    again = model_load(result.model_dir).predict(smiles[:5])
    assert [p["prediction"] for p in before] == [p["prediction"] for p in again]
    _, optimized_dir = recipe_profile(config, result, profile="int8", out=tmp_path / "int8", latency_runs=3)
    optimized = model_load(optimized_dir)
    assert optimized.model.stem.fp.weight.dtype == torch.float32  # the [FP] Linear stays float; the encoder is int8
    after = np.asarray([p["prediction"] for p in optimized.predict(smiles)])
    fp32 = np.asarray([p["prediction"] for p in loaded.predict(smiles)])
    assert np.corrcoef(after, fp32)[0, 1] > 0.95


def test_an_old_model_directory_still_loads(tmp_path: Path) -> None:
    """A model saved without the option (featurizer.json lacking its keys) loads and predicts as before."""
    torch.manual_seed(0)
    f = featurizer_build("smiles", conv_kernel=3).fit(TRAIN)
    targets = TargetEncoder.fit("regression", ["y"], [[str(i)] for i in range(len(TRAIN))])
    model = model_build(f, encoder_tiny(max_len=f.max_len), "regression", 1).eval()
    directory = model_save(tmp_path / "old", model=model, featurizer=f, targets=targets,
                           task="molecule-regression", columns={"input_col": "smiles", "target_cols": ["y"]})
    state = json.loads((directory / "featurizer.json").read_text())
    for key in ("fingerprint", "fp_radius", "fp_bits", "descriptors", "desc_mean", "desc_std"):
        state.pop(key)
    (directory / "featurizer.json").write_text(json.dumps(state))
    loaded = model_load(directory)
    assert not loaded.featurizer.fingerprint
    with torch.no_grad():
        expected = model(**collate_fn(f, "regression")([f.encode(s) for s in TRAIN])).logits.numpy()
    np.testing.assert_allclose(np.stack(loaded.logits(TRAIN)), expected, rtol=1e-5, atol=1e-6)


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    """One of two gloo ranks training a tiny [FP] + descriptors model on augmented molecules."""
    import os

    from mlcore.taskmodel import ExampleSet, evaluate_fn
    from mlcore.trainer import TrainConfig, train

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    smiles, labels, _ = synthetic.molecules(32)
    f = featurizer_for_task("molecule-classification", descriptors=True).fit(smiles)
    targets = TargetEncoder.fit("binary", ["y"], labels)
    data = ExampleSet(f, smiles, [f.encode(s) for s in smiles], [targets.encode(y) for y in labels], augment=True)
    torch.manual_seed(rank)  # different initial weights per rank: DDP broadcasts rank 0's
    model = model_build(f, encoder_tiny(max_len=f.max_len), "binary", 2)
    result = train(model=model, train_set=data, val_set=None, collate=collate_fn(f, "binary"), length=f.length,
                   evaluate=evaluate_fn(targets), primary_metric="loss", greater_is_better=False,
                   config=TrainConfig(epochs=2, batch_size=8, patience=None, seed=0, device="cpu"))
    torch.save(result.model.state_dict(), Path(out_dir) / f"rank{rank}.pt")


def test_ddp_ranks_train_the_fp_stem_identically(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from tests.mlcore.test_ddp import _free_port

    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    torch.manual_seed(0)  # rank 0's initial weights
    smiles, _, _ = synthetic.molecules(32)
    f = featurizer_for_task("molecule-classification", descriptors=True).fit(smiles)
    initial = model_build(f, encoder_tiny(max_len=f.max_len), "binary", 2).state_dict()
    for key in ("stem.fp.weight", "stem.desc.weight"):  # gradients reached the [FP] token's Linears
        assert not torch.equal(r0[key], initial[key]), key
