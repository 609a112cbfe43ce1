"""How the dashboards show molecules (torch-free)."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="smiles", length_unit="tokens", length_title="SMILES tokens", drawing="molecule",
                    example_structures=True)
