"""`compact`: structured slimming (`slim`) followed by dynamic int8 quantization (`int8`).

The two compose: slimming removes whole heads and FFN neurons (fewer multiply-adds), int8 makes the
remaining Linear layers cheaper and four times smaller. The accuracy budget applies to the slimming
stage; quantization is then applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from torch import nn

from mlcore.compress import int8, slim
from mlcore.compress.base import CompressContext, Compressed, profile_register


@dataclass
class CompactConfig:
    slim: slim.SlimConfig = field(default_factory=slim.SlimConfig)
    int8: int8.Int8Config = field(default_factory=int8.Int8Config)

    @classmethod
    def from_options(cls, **options: Any) -> CompactConfig:
        """The config from flat options (the catalog's): each goes to the stage whose config has it
        (`engine`, `per_channel`: int8; `ffn_fraction`, `head_fraction`, `steps`, ...: slim)."""
        slim_names = {f.name for f in fields(slim.SlimConfig)}
        int8_names = {f.name for f in fields(int8.Int8Config)}
        unknown = set(options) - slim_names - int8_names
        if unknown:
            raise ValueError(f"profile 'compact' has no option(s) {sorted(unknown)}; "
                             f"valid: {sorted(slim_names | int8_names)}")
        return cls(slim=slim.SlimConfig(**{k: v for k, v in options.items() if k in slim_names}),
                   int8=int8.Int8Config(**{k: v for k, v in options.items() if k in int8_names}))


@profile_register("compact", CompactConfig)
def apply(model: nn.Module, config: CompactConfig, ctx: CompressContext) -> Compressed:
    """Slim (with fine-tuning and the budget), then quantize."""
    slimmed = slim.apply(model, config.slim, ctx)
    quantized = int8.apply(slimmed.model, config.int8, ctx)
    return Compressed(model=quantized.model, storage=quantized.storage, dtype=quantized.dtype,
                      notes=slimmed.notes + quantized.notes, info={"slim": slimmed.info, "int8": quantized.info})
