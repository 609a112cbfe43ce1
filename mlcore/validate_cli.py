"""`python -m mlcore validate`: check a dataset file before uploading it, with the portal's rules.

    python -m mlcore validate (--task T | --modality M) --data FILE [--policy strict|skip]
        [--input-col C] [--target-col C ...] [--id-col C] [--group-col C] [--split-col C]
        [--labels LABELS.csv] [--numeric-col C ...] [--missing-sentinel X ...] [--max-invalid-fraction F]
        [--output canonical.parquet] --report report.json

Prints the counts and the totals per reason, and exits 0 when the file is valid under the policy,
1 when it is not, 2 when it cannot be read at all (missing file, wrong format, a column absent),
with a one-line message naming the file and the reason. Also runnable as
`python -m mlcore.validate_cli ...`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlcore import catalog
from mlcore.columns import ColumnMapping
from mlcore.readers import FORMATS, ReadError
from mlcore.validation import POLICIES, ValidationOptions, ValidationResult, validate_file

EXIT_VALID, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m mlcore validate",
        description="Validate a dataset file record by record (the checks the portal runs at upload).",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=sorted(catalog.TASKS), help="the task: records and targets are checked")
    what.add_argument("--modality", choices=sorted(catalog.MODALITIES), help="the modality: records only")
    p.add_argument("--data", required=True, help="CSV / TSV (optionally .gz), FASTA, SDF or Parquet file")
    p.add_argument("--policy", choices=POLICIES, default="strict",
                   help="strict: any bad record makes the file invalid; skip: bad records are dropped")
    p.add_argument("--input-col", action="append", default=[],
                   help="input column (object id column for particles / light curves; repeat for tabular features)")
    p.add_argument("--target-col", action="append", default=[],
                   help="target column (repeat, or comma-separate, for several regression targets)")
    p.add_argument("--id-col")
    p.add_argument("--group-col")
    p.add_argument("--split-col", help="a column saying train / val / test per record")
    p.add_argument("--labels", help="FASTA only: a CSV / TSV of labels keyed by record id")
    p.add_argument("--format", choices=FORMATS, help="override format detection")
    p.add_argument("--max-len", type=int, help="longest record accepted (tokens / bases / elements)")
    p.add_argument("--iupac", choices=("warn", "reject"), default="warn",
                   help="DNA ambiguity codes other than N: accept with a warning, or reject")
    p.add_argument("--max-invalid-fraction", type=float, default=0.5,
                   help="with --policy skip: the file is invalid when more than this fraction of records is bad")
    p.add_argument("--numeric-col", action="append", default=None,
                   help="tabular: a numeric feature column (repeat; default: inferred from the first records)")
    p.add_argument("--missing-sentinel", action="append", type=float, default=None,
                   help="tabular: a numeric value meaning 'missing' (repeat; default -999)")
    p.add_argument("--workers", type=int, help="SMILES worker processes (default: the CPUs available)")
    p.add_argument("--output", help="write the canonical Parquet copy of the valid records here")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--quiet", action="store_true", help="print only the summary line")
    return p


def _split_cols(values: list[str]) -> tuple[str, ...]:
    return tuple(c.strip() for v in values for c in v.split(",") if c.strip())


def _print_summary(result: ValidationResult, quiet: bool) -> None:
    unit = "rows" if result.unit == "row" else "records"
    print(f"{result.source}: {result.rows} {unit}, {result.valid} valid, {result.invalid} invalid "
          f"(policy {result.policy}): {result.status}")
    if quiet:
        return
    for code, count in result.totals.items():
        example = next((p for p in result.problems if p.code == code), None)
        where = f" (first: {result.unit} {example.line}: {example.reason})" if example and example.line else (
            f" ({example.reason})" if example else "")
        print(f"  {code}: {count}{where}")
    for w in result.warnings:
        print(f"  warning {w['code']}: {w['count']}" + (f" ({w['message']})" if w.get("message") else ""))


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (0 valid, 1 invalid, 2 unreadable)."""
    args = _parser().parse_args(argv)
    mapping = ColumnMapping(
        input_cols=_split_cols(args.input_col), target_cols=_split_cols(args.target_col),
        id_col=args.id_col, group_col=args.group_col, split_col=args.split_col,
    )
    options = ValidationOptions(
        max_len=args.max_len, iupac=args.iupac, workers=args.workers, format=args.format, side_labels=args.labels,
        max_invalid_fraction=args.max_invalid_fraction,
        numeric_cols=_split_cols(args.numeric_col) if args.numeric_col else None,
        sentinels=tuple(args.missing_sentinel) if args.missing_sentinel else ValidationOptions.sentinels,
    )
    try:
        result = validate_file(args.data, task=args.task, modality=args.modality, mapping=mapping,
                               policy=args.policy, options=options, output=args.output)
    except ReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.report:
            Path(args.report).write_text(json.dumps({"source": Path(args.data).name, "status": "unreadable",
                                                     "error": str(exc)}, indent=1) + "\n")
        return EXIT_UNREADABLE
    except ValueError as exc:  # inconsistent arguments (a task and a modality that disagree, ...)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.report:
        Path(args.report).write_text(json.dumps(result.report(), indent=1) + "\n")
    _print_summary(result, args.quiet)
    return EXIT_VALID if result.ok else EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
