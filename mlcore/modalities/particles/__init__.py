"""Particle sets (jets / events): `rules` (torch-free record rules), `view` (torch-free), `featurizer` (torch)."""
