"""Streaming readers for uploaded dataset files: CSV / TSV (optionally gzipped), FASTA, SDF, Parquet.

Every reader yields `Chunk`s of at most `chunk_size` records, column by column, and never holds the
whole file: memory is bounded by the chunk size (and, for long-format sets and series, by the
largest object), whatever the file size. Every record carries where it came from, so a problem can
be reported as "line 17, column smiles":

- CSV / TSV: the physical file line where the record starts. The header is line 1, the first data
  row line 2; a quoted field spanning several lines counts every line (the csv module's `line_num`
  is the line where a record *ended*, so the start is the previous record's end + 1); blank lines
  are skipped but still counted.
- FASTA: the line of the record's `>` header.
- SDF: the record's first line (its title line).
- Parquet: the 1-based row number (`unit == "row"`).

Compression is detected from the magic bytes (gzip: 1f 8b), not from the name, and so is Parquet
(PAR1); other formats come from the suffix, else from sniffing the first bytes.

Sets and series (particles, light curves) come in long format, one row per element with an object
id column, or, in Parquet, one row per object with list columns. `group_long` turns long rows into
one record per object. Supported: rows of one object must be contiguous (any order of objects, any
order of rows inside an object). An object whose rows reappear after another object started is not
merged: the reappearing rows become a record flagged `not_contiguous`, naming the line where the
object first began, because merging them would require holding every open object in memory.

A file that cannot be read at all (missing, binary, wrong format, no header, a mapped column absent)
raises `ReadError` with a one-line message naming the file and the reason. Problems with single
records (a row with the wrong number of fields, a non-contiguous object) are not exceptions: they
travel in `Chunk.errors` and the validator reports them like any other bad record.

Nothing here imports torch or Django: the portal's validation task and the CLI both use it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMATS = ("csv", "tsv", "fasta", "sdf", "parquet")
DEFAULT_CHUNK_SIZE = 4096
# A single field may legitimately be long (a whole chromosome arm in a CSV cell); the csv module's
# default limit (128 KiB) would turn that into a parse error. 256 MiB still bounds one record.
_FIELD_LIMIT = 256 * 1024 * 1024
_SNIFF_BYTES = 65536
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_SUFFIX_FORMATS = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".fasta": "fasta", ".fa": "fasta", ".fna": "fasta", ".faa": "fasta", ".fas": "fasta", ".ffn": "fasta",
    ".sdf": "sdf", ".sd": "sdf", ".mol": "sdf",
    ".parquet": "parquet", ".pq": "parquet",
}
MAX_VALUE_CHARS = 80  # values quoted in problems are cut to this many characters
# The canonical Parquet copy written by validation keeps each record's original line (or row) in this
# column, and the original file's name and unit in its schema metadata, so that whoever reads the
# copy (training, prediction) can still point at the file the researcher uploaded.
SOURCE_LINE_COL = "source_line"
SOURCE_NAME_KEY = b"mlcore.source"
SOURCE_UNIT_KEY = b"mlcore.source_unit"


class ReadError(Exception):
    """The file cannot be read at all; `str()` is the one-line message naming the file and reason."""

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        self.source, self.reason, self.line = source, reason, line
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class ColumnMapping:
    """Which columns of the file play which role. Empty / None means: the modality's or task's default.

    `input_cols`: the record column (sequence, SMILES, SDF molecule) or, for long formats, the object
    id column; for tabular data the feature columns (empty: every column not mapped elsewhere).
    `target_cols`: one or several targets (several for multi-target regression).
    """

    input_cols: tuple[str, ...] = ()
    target_cols: tuple[str, ...] = ()
    id_col: str | None = None
    group_col: str | None = None
    split_col: str | None = None


@dataclass
class Chunk:
    """Up to `chunk_size` records, column-wise: `columns[name][i]` belongs to the record on `lines[i]`.

    `errors` are (index, code, column, message, value) problems found while reading (the record at
    `index` is then invalid whatever its values). For long-format objects `element_lines[i]` holds the
    line of each element of record i, so a bad value is reported on its own row.
    """

    lines: list[int]
    columns: dict[str, list[Any]]
    errors: list[tuple[int, str, str | None, str, str]] = field(default_factory=list)
    element_lines: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class Reader:
    """An opened data file: its columns, how positions are counted, and a chunk iterator factory."""

    source: str  # the file name used in messages
    path: Path
    format: str  # one of FORMATS
    columns: list[str]
    unit: str  # "line" (text formats) or "row" (Parquet)
    list_columns: frozenset[str] = frozenset()  # Parquet columns holding lists (one object per row)
    _iterate: Callable[[Sequence[str]], Iterator[Chunk]] | None = None

    def chunks(self, columns: Sequence[str]) -> Iterator[Chunk]:
        """Iterate the file once, yielding only `columns` (each must be in `self.columns`)."""
        absent = [c for c in columns if c not in self.columns]
        if absent:
            raise ReadError(self.source, f"no column {absent[0]!r} (columns: {', '.join(self.columns)})")
        assert self._iterate is not None
        return self._iterate(list(columns))


def value_text(value: Any) -> str:
    """A value as quoted in a problem: text, cut to MAX_VALUE_CHARS characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Opening and format detection


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")  # type: ignore[return-value]


def open_text(path: str | Path) -> io.TextIOWrapper:
    """The file as text, gunzipped when its first bytes say gzip. `newline=""` lets the csv module see
    line breaks inside quoted fields; utf-8-sig drops the byte-order mark spreadsheets write; bytes
    that are not UTF-8 become U+FFFD, which every alphabet check then reports as a bad character."""
    return io.TextIOWrapper(_open_binary(Path(path)), encoding="utf-8-sig", errors="replace", newline="")


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def detect_format(path: str | Path) -> str:
    """The file's format: magic bytes first (Parquet), then the suffix, then the first bytes' content.

    Raises ReadError for a missing, empty, unreadable or binary file.
    """
    path = Path(path)
    if not path.exists():
        raise ReadError(path.name, f"file not found: {path}")
    if path.is_dir():
        raise ReadError(path.name, "is a directory, not a data file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == _PARQUET_MAGIC:
        return "parquet"
    by_suffix = _SUFFIX_FORMATS.get(_suffix(path))
    if by_suffix == "parquet":
        raise ReadError(path.name, "not a Parquet file (it does not start with the PAR1 magic bytes)")
    try:
        with _open_binary(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ReadError(path.name, f"unreadable file: {exc}") from None
    if not head.strip():
        raise ReadError(path.name, "empty file")
    if b"\x00" in head:
        raise ReadError(path.name, "binary file: not CSV, TSV, FASTA, SDF or Parquet")
    if by_suffix:
        return by_suffix
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    if text.lstrip().startswith(">"):
        return "fasta"
    if "M  END" in text or "$$$$" in text:
        return "sdf"
    first = text.splitlines()[0] if text.splitlines() else ""
    return "tsv" if first.count("\t") > first.count(",") else "csv"


def reader_open(
    path: str | Path,
    *,
    fmt: str | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    delimiter: str | None = None,
    side_labels: str | Path | None = None,
    side_id_col: str | None = None,
) -> Reader:
    """Open `path` for streaming. `fmt` overrides detection; `delimiter` overrides CSV / TSV's.

    `side_labels` (FASTA only): a CSV / TSV keyed by record id (`side_id_col`, default `id` or its
    first column) whose other columns join each FASTA record. It is read whole: it holds labels, one
    short row per record, not sequences.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ReadError(path.name, f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")
    if not path.exists():
        raise ReadError(path.name, f"file not found: {path}")
    if fmt in ("csv", "tsv"):
        return _delimited_open(path, fmt, chunk_size, delimiter or ("\t" if fmt == "tsv" else ","))
    if fmt == "fasta":
        return _fasta_open(path, chunk_size, side_labels, side_id_col)
    if fmt == "sdf":
        return _sdf_open(path, chunk_size)
    return _parquet_open(path, chunk_size)


# ---------------------------------------------------------------------------------------------
# CSV / TSV


def _delimited_open(path: Path, fmt: str, chunk_size: int, delimiter: str) -> Reader:
    csv.field_size_limit(_FIELD_LIMIT)
    with open_text(path) as handle:
        try:
            header = next(csv.reader(handle, delimiter=delimiter), None)
        except csv.Error as exc:
            raise ReadError(path.name, f"unreadable header: {exc}", line=1) from None
    if not header or all(not h.strip() for h in header):
        raise ReadError(path.name, "no header line (the first line must name the columns)")
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ReadError(path.name, f"duplicate column name {dupes[0]!r} in the header", line=1)

    def iterate(columns: Sequence[str]) -> Iterator[Chunk]:
        idx = [header.index(c) for c in columns]
        n_fields = len(header)
        with open_text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            next(reader)
            lines: list[int] = []
            rows: list[list[str]] = []
            errors: list[tuple[int, str, str | None, str, str]] = []
            start = reader.line_num + 1
            try:
                for values in reader:
                    line, start = start, reader.line_num + 1
                    if len(values) != n_fields:
                        if not values or (len(values) == 1 and not values[0].strip()):
                            continue  # a blank line carries no record (but was counted)
                        errors.append((len(lines), "field_count", None,
                                       f"{len(values)} fields, the header has {n_fields}",
                                       value_text(delimiter.join(values))))
                        values = [""] * n_fields
                    lines.append(line)
                    rows.append(values)
                    if len(lines) >= chunk_size:
                        yield _rows_chunk(lines, rows, columns, idx, errors)
                        lines, rows, errors = [], [], []
            except csv.Error as exc:  # e.g. a NUL byte: the rest of the file cannot be trusted
                raise ReadError(path.name, f"unreadable CSV: {exc}", line=start) from None
            if lines:
                yield _rows_chunk(lines, rows, columns, idx, errors)

    return Reader(path.name, path, fmt, header, "line", _iterate=iterate)


def _rows_chunk(lines: list[int], rows: list[list[str]], columns: Sequence[str], idx: list[int],
                errors: list[tuple[int, str, str | None, str, str]]) -> Chunk:
    # Transposing once per chunk with list comprehensions is several times faster than appending
    # to one list per column inside the row loop.
    return Chunk(lines, {c: [r[i] for r in rows] for c, i in zip(columns, idx)}, errors)


# ---------------------------------------------------------------------------------------------
# FASTA

_FASTA_FIELD = re.compile(r"(\S+?)=(\"[^\"]*\"|\S*)")


def _fasta_header(text: str) -> dict[str, str]:
    """`>id key=value key2="a b" free text` -> {"id": ..., "description": ..., key: value, ...}."""
    body = text[1:].strip()
    parts = body.split(None, 1)
    fields = {"id": parts[0] if parts else "", "description": parts[1] if len(parts) > 1 else ""}
    for key, value in _FASTA_FIELD.findall(fields["description"]):
        if key not in ("id", "sequence", "description"):
            fields[key] = value[1:-1] if value.startswith('"') else value
    return fields


def _fasta_open(path: Path, chunk_size: int, side_labels: str | Path | None, side_id_col: str | None) -> Reader:
    first_header = None
    with open_text(path) as handle:
        for line_no, text in enumerate(handle, start=1):
            if not text.strip() or text.startswith(";"):
                continue
            if not text.startswith(">"):
                raise ReadError(path.name, "not FASTA: sequence data before the first '>' header", line=line_no)
            first_header = _fasta_header(text)
            break
    if first_header is None:
        raise ReadError(path.name, "no FASTA records")
    columns = ["id", "sequence", "description"] + [k for k in first_header if k not in ("id", "description")]
    side: dict[str, dict[str, str]] = {}
    side_name = ""
    if side_labels is not None:
        side_name = Path(side_labels).name
        side_reader = reader_open(side_labels)
        if side_reader.format not in ("csv", "tsv"):
            raise ReadError(side_name, "the labels file for a FASTA must be CSV or TSV")
        key = side_id_col or ("id" if "id" in side_reader.columns else side_reader.columns[0])
        if key not in side_reader.columns:
            raise ReadError(side_name, f"no id column {key!r} (columns: {', '.join(side_reader.columns)})")
        extra = [c for c in side_reader.columns if c != key]
        for chunk in side_reader.chunks([key, *extra]):
            for i, rid in enumerate(chunk.columns[key]):
                side[rid.strip()] = {c: chunk.columns[c][i] for c in extra}
        columns += [c for c in extra if c not in columns]

    def iterate(wanted: Sequence[str]) -> Iterator[Chunk]:
        lines: list[int] = []
        cols: dict[str, list[Any]] = {c: [] for c in wanted}
        errors: list[tuple[int, str, str | None, str, str]] = []
        header: dict[str, str] | None = None
        header_line = 0
        parts: list[str] = []

        def emit() -> None:
            assert header is not None
            record = dict(header)
            record["sequence"] = "".join(parts)
            if side_labels is not None:
                row = side.get(record["id"])
                if row is None:
                    errors.append((len(lines), "side_row_missing", "id",
                                   f"record id {record['id']!r} has no row in {side_name}", value_text(record["id"])))
                else:
                    record.update({k: v for k, v in row.items() if k not in record})
            lines.append(header_line)
            for c in wanted:
                cols[c].append(record.get(c))

        with open_text(path) as handle:
            for line_no, text in enumerate(handle, start=1):
                if text.startswith(">"):
                    if header is not None:
                        emit()
                        if len(lines) >= chunk_size:
                            yield Chunk(lines, cols, errors)
                            lines, cols, errors = [], {c: [] for c in wanted}, []
                    header, header_line, parts = _fasta_header(text), line_no, []
                elif text.startswith(";"):
                    continue  # old-style FASTA comment line
                elif header is not None:
                    parts.append(text.strip())
        if header is not None:
            emit()
        if lines:
            yield Chunk(lines, cols, errors)

    return Reader(path.name, path, "fasta", columns, "line", _iterate=iterate)


# ---------------------------------------------------------------------------------------------
# SDF
#
# Records are split on `$$$$` lines here, not by RDKit's ForwardSDMolSupplier, because the supplier
# cannot say on which line a record began; each record's mol block is parsed later by the validator
# (`Chem.MolFromMolBlock`, the same parser the supplier uses), where its errors become problems.

_SDF_PROPERTY = re.compile(r"^>.*?<([^>]+)>")
SDF_MOL_COLUMN = "mol"  # the column holding a record's mol block
SDF_NAME_COLUMN = "name"  # the column holding a record's title line


def _sdf_records(path: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(first line, mol block, properties) per SDF record."""
    start = 1
    block: list[str] = []
    props: dict[str, str] = {}
    in_props = False
    prop_name: str | None = None
    prop_lines: list[str] = []
    with open_text(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n")
            if text.startswith("$$$$"):
                if prop_name is not None:
                    props[prop_name] = "\n".join(prop_lines).strip()
                if block or props:
                    yield start, "\n".join(block) + "\n", props
                start, block, props, in_props, prop_name, prop_lines = line_no + 1, [], {}, False, None, []
                continue
            if not in_props:
                block.append(text)
                if text.startswith("M  END"):
                    in_props = True
                continue
            match = _SDF_PROPERTY.match(text)
            if match:
                if prop_name is not None:
                    props[prop_name] = "\n".join(prop_lines).strip()
                prop_name, prop_lines = match.group(1), []
            elif prop_name is not None:
                if text.strip():
                    prop_lines.append(text)
                else:
                    props[prop_name] = "\n".join(prop_lines).strip()
                    prop_name, prop_lines = None, []
    if prop_name is not None:
        props[prop_name] = "\n".join(prop_lines).strip()
    if any(line.strip() for line in block) or props:  # a last record without a closing $$$$
        yield start, "\n".join(block) + "\n", props


def _sdf_open(path: Path, chunk_size: int) -> Reader:
    first = next(_sdf_records(path), None)
    if first is None:
        raise ReadError(path.name, "no SDF records")
    columns = [SDF_MOL_COLUMN, SDF_NAME_COLUMN] + [p for p in first[2] if p not in (SDF_MOL_COLUMN, SDF_NAME_COLUMN)]

    def iterate(wanted: Sequence[str]) -> Iterator[Chunk]:
        lines: list[int] = []
        cols: dict[str, list[Any]] = {c: [] for c in wanted}
        for line, block, props in _sdf_records(path):
            lines.append(line)
            for c in wanted:
                if c == SDF_MOL_COLUMN:
                    cols[c].append(block)
                elif c == SDF_NAME_COLUMN:
                    cols[c].append(block.split("\n", 1)[0].strip())
                else:
                    cols[c].append(props.get(c))  # absent property: None, reported as missing
            if len(lines) >= chunk_size:
                yield Chunk(lines, cols)
                lines, cols = [], {c: [] for c in wanted}
        if lines:
            yield Chunk(lines, cols)

    return Reader(path.name, path, "sdf", columns, "line", _iterate=iterate)


# ---------------------------------------------------------------------------------------------
# Parquet


def _parquet_open(path: Path, chunk_size: int) -> Reader:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several error types for corrupt files
        raise ReadError(path.name, f"unreadable Parquet file: {exc}") from None
    schema = pfile.schema_arrow
    lists = frozenset(f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type))

    def iterate(wanted: Sequence[str]) -> Iterator[Chunk]:
        row = 0
        # iter_batches decodes one row group slice at a time: memory stays at one batch.
        for batch in pfile.iter_batches(batch_size=chunk_size, columns=list(wanted)):
            n = batch.num_rows
            cols = {name: batch.column(name).to_pylist() for name in wanted}
            yield Chunk(list(range(row + 1, row + n + 1)), cols)
            row += n

    return Reader(path.name, path, "parquet", list(schema.names), "row", lists, _iterate=iterate)


# ---------------------------------------------------------------------------------------------
# Long format: one row per element -> one record per object


def group_long(
    chunks: Iterator[Chunk],
    *,
    id_col: str,
    element_cols: Sequence[str],
    record_cols: Sequence[str],
    max_elements: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[Chunk]:
    """Group contiguous rows with the same `id_col` value into one record per object.

    A record's `element_cols` become lists (one value per row, at most `max_elements` kept: beyond
    that only the count grows, so one runaway object cannot exhaust memory, and the record is
    flagged `too_many_elements`); its `record_cols` (targets, group, split) come from the object's
    first row, and a later row disagreeing is flagged `object_conflict` on that row's line. Rows of
    an object that reappear after another object are flagged `not_contiguous` (see module docs).
    """
    out_lines: list[int] = []
    out_cols: dict[str, list[Any]] = {c: [] for c in (id_col, *element_cols, *record_cols)}
    out_errors: list[tuple[int, str, str | None, str, str]] = []
    out_elines: list[list[int]] = []
    # hash(object id) -> the line where the object began. Python's hash is stable within a process,
    # which is all this needs; ints cost far less memory than keeping the id strings.
    finished: dict[int, int] = {}
    cur_id: Any = None
    cur: dict[str, list[Any]] = {}
    cur_lines: list[int] = []
    cur_count = 0
    cur_errors: list[tuple[str, str | None, str, str]] = []
    cur_record: dict[str, Any] = {}

    def flush() -> None:
        index = len(out_lines)
        out_lines.append(cur_lines[0])
        out_elines.append(cur_lines)
        out_cols[id_col].append(cur_id)
        for c in element_cols:
            out_cols[c].append(cur[c])
        for c in record_cols:
            out_cols[c].append(cur_record[c])
        if cur_count > max_elements:
            out_errors.append((index, "too_many_elements", id_col,
                               f"object has {cur_count} rows, more than the maximum {max_elements}",
                               value_text(cur_id)))
        for code, column, message, value in cur_errors:
            out_errors.append((index, code, column, message, value))

    for chunk in chunks:
        ids = chunk.columns[id_col]
        read_errors = {e[0]: e for e in chunk.errors}
        for i, oid in enumerate(ids):
            line = chunk.lines[i]
            key = oid.strip() if isinstance(oid, str) else oid
            if key != cur_id or not cur_lines:
                if cur_lines:
                    finished.setdefault(hash(cur_id), cur_lines[0])
                    flush()
                    if len(out_lines) >= chunk_size:
                        yield Chunk(out_lines, out_cols, out_errors, out_elines)
                        out_lines, out_errors, out_elines = [], [], []
                        out_cols = {c: [] for c in out_cols}
                cur_id, cur_lines, cur_count, cur_errors = key, [], 0, []
                cur = {c: [] for c in element_cols}
                cur_record = {c: chunk.columns[c][i] for c in record_cols}
                began = finished.get(hash(key))
                if began is not None:
                    cur_errors.append(("not_contiguous", id_col,
                                       f"rows of object {key!r} continue here after other objects (it began on "
                                       f"line {began}); keep each object's rows together (sort by {id_col!r})",
                                       value_text(key)))
            cur_count += 1
            if i in read_errors:
                _, code, column, message, value = read_errors[i]
                cur_errors.append((code, column, f"line {line}: {message}", value))
            for c in record_cols:
                if chunk.columns[c][i] != cur_record[c] and not any(e[0] == "object_conflict" for e in cur_errors):
                    cur_errors.append(("object_conflict", c,
                                       f"line {line}: {c} {chunk.columns[c][i]!r} differs from "
                                       f"{cur_record[c]!r} on the object's first line {cur_lines[0] if cur_lines else line}",
                                       value_text(chunk.columns[c][i])))
            if cur_count <= max_elements:
                cur_lines.append(line)
                for c in element_cols:
                    cur[c].append(chunk.columns[c][i])
    if cur_lines:
        flush()
    if out_lines:
        yield Chunk(out_lines, out_cols, out_errors, out_elines)
