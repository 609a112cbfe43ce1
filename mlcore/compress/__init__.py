"""Optimization profiles: one module per compression method, each registered under its definition.

- `base`: the registry (`METHODS`, `method_register`, `method_get`), `CompressContext`, `Compressed`.
- `baseline`, `mixed_precision`, `pruned`, `slim`, `int8`, `distilled`, `compact`: the methods; each
  holds a `<Method>Config` dataclass and `apply(model, config, ctx) -> Compressed`.
- `storage`: compact saving and reloading of optimized weights (int8, sparse, bf16).
- `report`: `CompressionReport`, latency / size / sparsity measurement.
- `run`: `profile_run`, the step `mlcore.recipe.recipe_run` takes after training when a profile is set.

Importing this package registers every method; the catalog (`mlcore.catalog.PROFILES`) holds the
torch-free descriptions the portal shows.
"""

from mlcore.compress import baseline, mixed_precision, pruned, slim, int8, distilled, compact  # noqa: F401 (registration, catalog order)
from mlcore.compress.base import METHODS, CompressContext, Compressed, method_get, method_register
from mlcore.compress.report import CompressionReport, ModelStats, measure_latency
from mlcore.compress.run import OPTIMIZED_DIR, REPORT_NAME, profile_run

__all__ = ["METHODS", "OPTIMIZED_DIR", "REPORT_NAME", "CompressContext", "Compressed", "CompressionReport",
           "ModelStats", "measure_latency", "method_get", "method_register", "profile_run"]
