"""How the dashboards show protein records (torch-free)."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="protein", length_unit="residues", length_title="residues", drawing="sequence",
                    motif_window=5)
