"""How the dashboards show DNA / RNA records (torch-free)."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="dna", length_unit="bases", length_title="bases", drawing="sequence", motif_window=8)
