"""How the dashboards show light curves (torch-free): the weights along the observations."""

from mlcore.modalities.common import ModalityView

VIEW = ModalityView(modality="lightcurve", length_unit="observations", length_title="observations",
                    drawing="sequence")
