"""What a validation run returns: one `Problem` per bad record and the `ValidationResult` whose
`report()` is the JSON the portal stores and the CLI writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    """One bad record (or, with `line` None, a dataset-level problem)."""

    line: int | None
    column: str | None
    code: str  # stable, machine-readable
    reason: str  # human message
    value: str | None = None  # the offending value, cut to 80 characters

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "code": self.code, "reason": self.reason,
                "value": self.value}


@dataclass
class ValidationResult:
    """Everything `report()` serializes; `status` is "valid" or "invalid"."""

    source: str
    format: str
    unit: str
    modality: str
    task: str | None
    policy: str
    rows: int
    valid: int
    invalid: int
    problems: list[Problem]
    totals: dict[str, int]
    warnings: list[dict[str, Any]]
    stats: dict[str, Any]
    status: str
    output: str | None = None  # the canonical Parquet copy (written only when status is valid)
    columns: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    def report(self) -> dict[str, Any]:
        """The JSON-able report stored with the dataset and written by the CLI."""
        return {
            "source": self.source, "format": self.format, "unit": self.unit, "modality": self.modality,
            "task": self.task, "policy": self.policy, "status": self.status,
            "rows": self.rows, "valid": self.valid, "invalid": self.invalid,
            "problems": [p.as_dict() for p in self.problems],
            "problems_listed": len(self.problems),
            "totals": self.totals, "warnings": self.warnings, "stats": self.stats,
            "columns": self.columns, "output": self.output,
        }
