"""Optimization profiles: one module per profile, each registered under its definition.

- `base`: the registry (`PROFILE_IMPLS`, `profile_register`, `profile_impl_get`), `CompressContext`, `Compressed`.
- `baseline`, `mixed_precision`, `pruned`, `slim`, `int8`, `distilled`, `compact`: the profiles; each
  holds a `<Profile>Config` dataclass and `apply(model, config, ctx) -> Compressed`.
- `storage`: compact saving and reloading of optimized weights (int8, sparse, bf16).
- `report`: `CompressionReport`, latency / size / sparsity measurement.
- `run`: `profile_run`, the step `mlcore.recipe.recipe_run` takes after training (every run has a
  profile; `baseline` is the trained model itself, measured like the others).

Importing this package registers every profile; the catalog (`mlcore.catalog.PROFILES`) holds the
torch-free descriptions and typed options the portal, the API and the CLI show and check.
"""

from mlcore.compress import baseline, mixed_precision, pruned, slim, int8, distilled, compact  # noqa: F401 (registration, catalog order)
from mlcore.compress.base import PROFILE_IMPLS, CompressContext, Compressed, profile_impl_get, profile_register
from mlcore.compress.report import CompressionReport, ModelStats, measure_latency
from mlcore.compress.run import OPTIMIZED_DIR, REPORT_NAME, profile_run

__all__ = ["OPTIMIZED_DIR", "PROFILE_IMPLS", "REPORT_NAME", "CompressContext", "Compressed", "CompressionReport",
           "ModelStats", "measure_latency", "profile_impl_get", "profile_register", "profile_run"]
