"""How the dashboards show particle sets (torch-free)."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="particles", length_unit="particles", length_title="particles", drawing="particles")
