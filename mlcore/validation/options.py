"""The knobs of a validation run (`ValidationOptions`), the policies and the hard length limit."""

from __future__ import annotations

from dataclasses import dataclass

from mlcore import catalog
from mlcore.catalog import DEFAULT_SENTINELS
from mlcore.readers import DEFAULT_LIMITS, Limits


POLICIES = ("strict", "skip")

# The longest record any job can train on (the max_len hyperparameter's upper bound): the default
# hard limit at upload, because the job's own max_len is not known yet. Records above the modality's
# default max_len are counted in the stats so the researcher knows to raise it.
HARD_MAX_LEN = int(catalog.HYPERPARAMETERS["max_len"].max or 16384)

_WARNING_EXAMPLES = 20  # examples listed per warning code (the count covers all)


@dataclass(frozen=True)
class ValidationOptions:
    """Knobs of a validation run; the defaults suit an upload whose job settings are not known yet."""

    max_len: int | None = None  # hard limit on tokens / elements; None: HARD_MAX_LEN
    min_len: int = 1  # shortest sequence accepted
    iupac: str = "warn"  # DNA ambiguity codes other than N: "warn" (accepted, counted) or "reject"
    min_per_class: int = 2  # classification: fewer examples of a class cannot be split and evaluated
    max_classes: int = 1000  # more distinct labels than this means the target is not a class label
    min_valid: int = 1  # with `skip`: fewest valid records for a valid dataset
    # With `skip`: above this fraction of bad records the file is invalid anyway; that many bad
    # records nearly always mean a wrong column mapping or file, not a few typos worth dropping.
    max_invalid_fraction: float = 0.5
    sentinels: tuple[float, ...] = DEFAULT_SENTINELS  # tabular: numeric values meaning "missing"
    numeric_cols: tuple[str, ...] | None = None  # tabular: declared numeric columns (None: inferred)
    min_elements: int | None = None  # sets / series: None = particles 1, light curves 2 (as training)
    time_order: str = "sort"  # light curves: "sort" unordered times (warning) or "reject" them
    workers: int | None = None  # SMILES worker processes; None: the CPUs this process may use
    chunk_size: int = 4096
    max_problems: int = 1000  # problems listed in the report (totals count all of them)
    format: str | None = None  # force csv / tsv / fasta / sdf / parquet
    delimiter: str | None = None
    side_labels: str | None = None  # FASTA: CSV of labels keyed by record id
    duplicates: bool = True  # report duplicate records (after canonicalization)
    # Bounds on what one file may cost (see mlcore.readers.Limits; None: unbounded). The portal sets
    # them from its settings; exceeding one ends the run with one ReadError saying which.
    max_line_bytes: int | None = DEFAULT_LIMITS.max_line_bytes
    max_header_bytes: int | None = DEFAULT_LIMITS.max_header_bytes
    max_decompressed_bytes: int | None = DEFAULT_LIMITS.max_decompressed_bytes
    max_gzip_ratio: float | None = DEFAULT_LIMITS.max_gzip_ratio
    max_seconds: float | None = None  # wall-clock time for the whole validation

    def limits(self) -> Limits:
        return Limits(max_line_bytes=self.max_line_bytes, max_header_bytes=self.max_header_bytes,
                      max_decompressed_bytes=self.max_decompressed_bytes, max_gzip_ratio=self.max_gzip_ratio)
