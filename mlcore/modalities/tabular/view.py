"""How the dashboards show tabular records (torch-free): attention ranked per feature."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="tabular", length_unit="features", length_title="features", drawing="features")
