"""Tokenizers, featurizers and stems of every modality: exact tokens, validation messages,
augmentation, the SMILES atom map, permutation invariance, padding invariance, explicit missing values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcore.model import encoder_tiny
from mlcore.modalities import RecordError, featurizer_build, featurizer_from_state
from mlcore.modalities.dna.featurizer import composition_matrix, reverse_complement_ids
from mlcore.modalities.smiles.featurizer import smiles_atom_index, smiles_canonical, smiles_tokenize
from mlcore.taskmodel import collate_fn, featurizer_for_task, model_build
from tests.mlcore import synthetic


# -- DNA ---------------------------------------------------------------------------------------


def test_dna_tokens_iupac_and_errors() -> None:
    f = featurizer_build("dna", kmer=1)
    ex = f.encode("acgUN")
    assert f.token_labels(ex) == ["A", "C", "G", "T", "N"]
    with pytest.raises(RecordError, match=r"invalid nucleotide 'Q' at position 5"):
        f.encode("ACGTQ")
    with pytest.raises(RecordError, match="empty"):
        f.encode("  ")
    with pytest.raises(RecordError, match="longer than max_len 8"):
        featurizer_build("dna", max_len=8).encode("A" * 9)


def test_dna_ambiguity_codes_embed_as_the_mean_of_their_bases() -> None:
    f = featurizer_build("dna", kmer=1, conv_kernel=0)
    stem = f.stem(16, 4)
    comp = composition_matrix()
    emb = comp @ stem.component  # (16, D): the embedding each token id gets
    ids = {c: f.encode(c)["tokens"][0] for c in "ACGTNR"}
    assert torch.allclose(emb[ids["N"]], emb[[ids[b] for b in "ACGT"]].mean(0), atol=1e-6)
    assert torch.allclose(emb[ids["R"]], emb[[ids["A"], ids["G"]]].mean(0), atol=1e-6)


def test_dna_kmers_and_reverse_complement() -> None:
    f = featurizer_build("dna", kmer=2)
    ex = f.encode("ACNT")
    # AC = 0*4+1 -> 3+1; CN and NT ambiguous (1); the last base has no full 2-mer (2).
    assert ex["kmers"].tolist() == [4, 1, 1, 2]
    ids = f.encode("AACGTN")["tokens"]
    assert f.token_labels({"tokens": reverse_complement_ids(ids)}) == list("NACGTT")
    assert (reverse_complement_ids(reverse_complement_ids(ids)) == ids).all()
    # Augmentation: with a generator, about half the draws are reverse complements, never anything else.
    seen = {tuple(f.encode("AACG", rng=np.random.default_rng(s))["tokens"]) for s in range(20)}
    assert seen == {tuple(f.encode("AACG")["tokens"]), tuple(f.encode("CGTT")["tokens"])}


# -- protein -----------------------------------------------------------------------------------


def test_protein_alphabet() -> None:
    f = featurizer_build("protein")
    assert f.token_labels(f.encode("mkXBZUO*")) == list("MKXBZUO")
    with pytest.raises(RecordError, match=r"invalid amino acid 'J' at position 3"):
        f.encode("MKJ")


# -- SMILES ------------------------------------------------------------------------------------


def test_smiles_regex_tokenizer() -> None:
    assert smiles_tokenize("CC(=O)Oc1ccccc1Br") == ["C", "C", "(", "=", "O", ")", "O", "c", "1", "c", "c", "c", "c",
                                                    "c", "1", "Br"]
    assert smiles_tokenize("[C@@H](Cl)[NH3+]C%12") == ["[C@@H]", "(", "Cl", ")", "[NH3+]", "C", "%12"]
    with pytest.raises(RecordError, match=r"invalid SMILES character 'X' at position 3"):
        smiles_tokenize("CCX")


def test_smiles_atom_map_matches_rdkit_atoms() -> None:
    from rdkit import Chem

    for smi in ["CC(=O)Oc1ccccc1C(=O)O", "[NH4+].[Cl-]", "C[C@H](N)C(=O)O", "Brc1ccc(Cl)cc1"]:
        canonical = smiles_canonical(smi)
        tokens = smiles_tokenize(canonical)
        mol = Chem.MolFromSmiles(canonical)
        atom_index = smiles_atom_index(tokens)
        atoms = [(t, k) for t, k in zip(tokens, atom_index) if k >= 0]
        assert len(atoms) == mol.GetNumAtoms()
        for tok, k in atoms:
            symbol = mol.GetAtomWithIdx(int(k)).GetSymbol()
            assert tok.strip("[]").lstrip("0123456789").upper().startswith(symbol.upper()), (tok, symbol)


def test_smiles_validation_canonicalization_and_randomized_augmentation() -> None:
    f = featurizer_build("smiles").fit(["OCC", "c1ccccc1"])
    assert f.encode("OCC")["smiles"] == "CCO"  # canonicalized
    with pytest.raises(RecordError, match="valence"):
        f.encode("C(C)(C)(C)(C)C")  # RDKit's own reason
    with pytest.raises(RecordError, match="unparsable"):
        f.encode("C1CC(")
    variants = {f.encode("CC(=O)Oc1ccccc1", rng=np.random.default_rng(s))["smiles"] for s in range(12)}
    assert len(variants) > 1
    assert {smiles_canonical(v) for v in variants} == {smiles_canonical("CC(=O)Oc1ccccc1")}
    restored = featurizer_from_state("smiles", f.state())
    assert restored.encode("CCO")["tokens"].tolist() == f.encode("CCO")["tokens"].tolist()


# -- particles ---------------------------------------------------------------------------------


def _model_for(task: str, inputs: list, n_out: int = 2, **options: object) -> tuple:
    torch.manual_seed(0)
    f = featurizer_for_task(task, **options).fit(inputs)
    model = model_build(f, encoder_tiny(max_len=64), "binary", n_out).eval()
    return f, model, collate_fn(f, "binary")


def test_particles_permutation_invariance_with_pairwise_bias() -> None:
    jets, _ = synthetic.jets(6)
    f, model, collate = _model_for("jet-tagging", jets)
    assert f.pairwise
    rng = np.random.default_rng(0)
    shuffled = []
    for jet in jets:
        perm = rng.permutation(len(jet["pt"]))
        shuffled.append({k: v[perm] for k, v in jet.items()})
    with torch.no_grad():
        a = model(**collate([f.encode(j) for j in jets])).logits
        b = model(**collate([f.encode(j) for j in shuffled])).logits
    assert not torch.allclose(a[0], a[1])  # the model is not trivially constant
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_particles_validation() -> None:
    f = featurizer_build("particles")
    with pytest.raises(ValueError, match="no valid particle records"):
        f.fit([{"pt": [1.0]}])
    jets, _ = synthetic.jets(2)
    f.fit(jets)
    with pytest.raises(RecordError, match="missing particle field.*eta"):
        f.encode({"pt": [1.0]})
    with pytest.raises(RecordError, match="non-positive energy at particle 1"):
        f.encode(dict(jets[0], energy=-jets[0]["energy"]))
    bad = dict(jets[0], pt=np.r_[jets[0]["pt"][:-1], np.nan])
    with pytest.raises(RecordError, match=f"non-finite pt at particle {len(bad['pt'])}"):
        f.encode(bad)


@pytest.mark.parametrize("task,make", [
    ("dna-classification", lambda: synthetic.dna(4)[0]),
    ("jet-tagging", lambda: synthetic.jets(4)[0]),
    ("lightcurve-classification", lambda: synthetic.lightcurves(4)[0]),
    ("molecule-classification", lambda: synthetic.molecules(4)[0]),
])
def test_padding_never_changes_outputs(task: str, make) -> None:
    inputs = make()
    f, model, collate = _model_for(task, inputs)
    examples = [f.encode(x) for x in inputs]
    with torch.no_grad():
        together = model(**collate(examples)).logits
        alone = torch.cat([model(**collate([e])).logits for e in examples])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


# -- light curves ------------------------------------------------------------------------------


def test_lightcurve_uses_real_time_and_sorts_observations() -> None:
    curves, _ = synthetic.lightcurves(3)
    f, model, collate = _model_for("lightcurve-classification", curves)
    curve = curves[0]
    shifted = dict(curve, time=curve["time"] + 1000.0)  # another zero point: relative times unchanged
    perm = np.random.default_rng(1).permutation(len(curve["time"]))
    shuffled = {k: np.asarray(v)[perm] for k, v in curve.items()}  # rows out of order in a long-format file
    stretched = dict(curve, time=curve["time"][0] + 2 * (curve["time"] - curve["time"][0]))
    with torch.no_grad():
        out = [model(**collate([f.encode(c)])).logits for c in (curve, shifted, shuffled, stretched)]
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0], out[2], atol=1e-5, rtol=0)
    assert not torch.allclose(out[0], out[3], atol=1e-4)  # the time scale itself matters
    assert f.token_labels(f.encode(curve))[0].split("@")[0] in ("g", "r")


# -- tabular -----------------------------------------------------------------------------------


def test_tabular_missing_values_are_embedded_explicitly() -> None:
    rows, _, _ = synthetic.tabular(12)
    f = featurizer_build("tabular").fit(rows)
    assert f.numeric == ["x1", "x2"] and list(f.categorical) == ["site"]
    at_mean = f.encode({"x1": "0", "x2": str(f.mean[1]), "site": "a"})
    for missing in ("", "-999", "NaN", None):
        ex = f.encode({"x1": "0", "x2": missing, "site": "a"})
        assert ex["num_missing"].tolist() == [False, True]
    unseen = f.encode({"x1": "0", "x2": "1", "site": "zzz"})
    assert unseen["cat"][0] == 1  # the "unseen category" id, not an error
    with pytest.raises(RecordError, match="non-numeric value 'abc' in numeric column 'x1'"):
        f.encode({"x1": "abc", "x2": "1", "site": "a"})
    stem = f.stem(16, 4)
    missing_ex = f.encode({"x1": "0", "x2": "", "site": "a"})
    collate = f.collate
    x_missing = stem(**collate([missing_ex]))[0][0, 1]
    x_mean = stem(**collate([at_mean]))[0][0, 1]
    # "missing" is its own learned vector, not the token of a standardized 0 (the mean).
    assert not torch.allclose(x_missing, x_mean)
    assert f.token_labels(at_mean) == ["x1", "x2", "site"]
