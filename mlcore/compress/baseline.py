"""`baseline`: the trained float32 model as is; the reference every other profile is measured against.

Its report compares the model with itself: the model's accuracy, size and latency, and the
measurement noise of this machine (a speedup of 0.95-1.05 on an idle one). `info["unchanged"]` tells
a caller that the optimized model is the trained one (the worker stores it once).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mlcore.compress.base import CompressContext, Compressed, profile_register


@dataclass
class BaselineConfig:
    """No options: the baseline is the trained model."""


@profile_register("baseline", BaselineConfig)
def apply(model: nn.Module, config: BaselineConfig, ctx: CompressContext) -> Compressed:
    """Return the model unchanged."""
    return Compressed(model=model, storage="dense", dtype="float32",
                      notes=["baseline: the optimized model is the trained model itself."],
                      info={"unchanged": True})
