"""Molecules as SMILES: `rules` (torch-free record rules, RDKit), `view` (torch-free), `featurizer` (torch)."""
