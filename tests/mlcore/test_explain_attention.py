"""Molecule attention maps: every SMILES token maps to exactly the RDKit atom it denotes, in the
canonical SMILES the model read and in the SMILES as the user wrote it (hand-checked cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from mlcore.explain import samples_add_inputs, smiles_atom_map, smiles_input_atom_index
from mlcore.modalities.smiles.rules import smiles_canonical, smiles_tokenize
from mlcore.recipe import RecipeConfig, recipe_run
from tests.mlcore import synthetic


def _map(smiles: str) -> tuple[str, list[str], list[int]]:
    canonical = smiles_canonical(smiles)
    tokens = smiles_tokenize(canonical)
    return canonical, tokens, smiles_atom_map(canonical, tokens).tolist()


@pytest.mark.parametrize(("written", "canonical", "atom_map", "to_input"), [
    # canonical order differs from the input: ethanol written from the oxygen
    ("OCC", "CCO", [0, 1, 2], [2, 1, 0]),
    # phenol: the ring closure digits are not atoms; the O moves to the front
    ("c1ccccc1O", "Oc1ccccc1", [0, 1, -1, 2, 3, 4, 5, 6, -1], [6, 5, 0, 1, 2, 3, 4]),
    # two-letter atoms and a branch; the halogens swap ends
    ("Brc1ccc(Cl)cc1", "Clc1ccc(Br)cc1", [0, 1, -1, 2, 3, 4, -1, 5, -1, 6, 7, -1], [5, 4, 3, 2, 1, 0, 7, 6]),
    # salts: the dot is no atom; the fragments swap
    ("[Na+].[Cl-]", "[Cl-].[Na+]", [0, -1, 1], [1, 0]),
    # an explicit hydrogen is an atom token and an atom of the drawn molecule
    ("[H]OC", "[H]OC", [0, 1, 2], [0, 1, 2]),
    # isotope bracket atom written last, canonical first
    ("C1CC1[13CH3]", "[13CH3]C1CC1", [0, 1, -1, 2, 3, -1], [3, 2, 0, 1]),
])
def test_tokens_map_to_the_right_atoms(written: str, canonical: str, atom_map: list[int], to_input: list[int]) -> None:
    got_canonical, tokens, got_map = _map(written)
    assert got_canonical == canonical
    assert got_map == atom_map
    assert smiles_input_atom_index(written, canonical) == to_input
    # The element of every atom token is the element of the atom it maps to, in both molecules.
    drawn = Chem.MolFromSmiles(canonical, sanitize=False)
    as_written = Chem.MolFromSmiles(written, sanitize=False)
    for token, atom in zip(tokens, got_map):
        if atom < 0:
            continue
        symbol = drawn.GetAtomWithIdx(atom).GetSymbol()
        assert symbol.lower() in token.lower()
        assert as_written.GetAtomWithIdx(to_input[atom]).GetSymbol() == symbol


def test_a_token_list_that_disagrees_with_rdkit_is_refused() -> None:
    with pytest.raises(ValueError, match="do not spell"):
        smiles_atom_map("CCO", ["C", "O"])
    # "Cl" split into "C" + "l": the first token would be read as carbon, but atom 0 is chlorine.
    with pytest.raises(ValueError, match="not atom 0"):
        smiles_atom_map("ClCC", ["C", "l", "C", "C"])


def test_an_input_of_another_molecule_is_refused() -> None:
    with pytest.raises(ValueError, match="canonicalizes to"):
        smiles_input_atom_index("CCN", "CCO")


def _from_last_atom(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol, canonical=False, rootedAtAtom=mol.GetNumAtoms() - 1)


def test_recipe_attention_samples_carry_exact_atom_maps(tmp_path: Path) -> None:
    smiles, labels, _ = synthetic.molecules(40)
    # Write half the molecules reversed-ish so canonical order differs from the input.
    written = [s if i % 2 else _from_last_atom(s) for i, s in enumerate(smiles)]
    data = synthetic.write_csv(tmp_path / "mol.csv", ["smiles", "label"], list(zip(written, labels)))
    run = recipe_run(RecipeConfig(task="molecule-classification", data=data, out=tmp_path / "run", device="cpu",
                                  hyperparameters={"epochs": 1}, explain_samples=6))
    samples = json.loads((run.explain.directory / "samples.json").read_text())
    samples = samples_add_inputs(samples, [r.input for r in run.prepared.test_records])
    with np.load(run.explain.directory / "attention.npz") as npz:
        for entry in samples:
            mol = Chem.MolFromSmiles(entry["smiles"], sanitize=False)
            raw = Chem.MolFromSmiles(entry["input_smiles"], sanitize=False)
            atoms = [a for a in entry["atom_index"] if a >= 0]
            assert sorted(atoms) == list(range(mol.GetNumAtoms()))  # every atom exactly once
            assert entry["tokens"][0] == "[CLS]" and entry["atom_index"][0] == -1
            for token, atom, raw_atom in zip(entry["tokens"], entry["atom_index"], entry["input_atom_index"]):
                if atom >= 0:
                    assert mol.GetAtomWithIdx(atom).GetSymbol().lower() in token.lower()
                    assert raw.GetAtomWithIdx(raw_atom).GetSymbol() == mol.GetAtomWithIdx(atom).GetSymbol()
            layers, heads, length, _ = npz[f"attn_{entry['key']}"].shape
            assert length == len(entry["tokens"]) and npz[f"rollout_{entry['key']}"].shape == (length,)


def test_attention_maps_are_trimmed_to_a_byte_budget_keeping_every_class(tmp_path: Path) -> None:
    from mlcore.explain import attention_trim

    shape = [2, 2, 5, 5]  # 200 bytes of float16 per sample
    samples = [{"key": k, "index": 10 + k, "label": "ab"[k // 3], "shape": shape} for k in range(6)]
    arrays = {}
    for k in range(6):
        arrays[f"attn_{k}"] = np.full(shape, k, dtype=np.float16)
        arrays[f"rollout_{k}"] = np.full(5, k, dtype=np.float32)
    np.savez_compressed(tmp_path / "attention.npz", **arrays)
    (tmp_path / "samples.json").write_text(json.dumps(samples))
    assert attention_trim(tmp_path, max_bytes=10_000) == samples  # fits: untouched
    kept = attention_trim(tmp_path, max_bytes=450)
    assert [e["key"] for e in kept] == [0, 3]  # two fit; labels a and b each keep one
    assert json.loads((tmp_path / "samples.json").read_text()) == kept
    with np.load(tmp_path / "attention.npz") as npz:
        assert sorted(npz.files) == ["attn_0", "attn_3", "rollout_0", "rollout_3"]
        assert npz["attn_3"][0, 0, 0, 0] == 3
    assert [e["key"] for e in attention_trim(tmp_path, max_bytes=1)] == [0]  # at least one
