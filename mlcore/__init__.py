"""mlcore: Labformer's shared Transformer training library.

Pure Python + PyTorch (+ RDKit for chemistry); never imports Django. This package file stays light on
purpose: the web process reads `mlcore.catalog` (tasks, modalities, presets, profiles) and must not
pay for a torch import, so nothing here imports torch or any submodule that does.
"""

__version__ = "0.1.0"
