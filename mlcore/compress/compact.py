"""`compact`: structured slimming (`slim`) followed by dynamic int8 quantization (`int8`).

The two compose: slimming removes whole heads and FFN neurons (fewer multiply-adds), int8 makes the
remaining Linear layers cheaper and four times smaller. The accuracy budget applies to the slimming
stage; quantization is then applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from mlcore.compress import int8, slim
from mlcore.compress.base import CompressContext, Compressed, method_register


@dataclass
class CompactConfig:
    slim: slim.SlimConfig = field(default_factory=slim.SlimConfig)
    int8: int8.Int8Config = field(default_factory=int8.Int8Config)


@method_register("compact", CompactConfig)
def apply(model: nn.Module, config: CompactConfig, ctx: CompressContext) -> Compressed:
    """Slim (with fine-tuning and the budget), then quantize."""
    slimmed = slim.apply(model, config.slim, ctx)
    quantized = int8.apply(slimmed.model, config.int8, ctx)
    return Compressed(model=quantized.model, storage=quantized.storage, dtype=quantized.dtype,
                      notes=slimmed.notes + quantized.notes, info={"slim": slimmed.info, "int8": quantized.info})
