"""Molecules as SMILES: `rules` (torch-free record rules, RDKit), `view` (torch-free), `featurizer` (torch)."""

from mlcore.modalities.common import package_getattr

__getattr__ = package_getattr(__name__)  # the rules' and featurizer's names, imported on first use
