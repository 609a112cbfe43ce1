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

Text is decoded strictly: UTF-8 (with or without the byte-order mark spreadsheets write) or, after a
UTF-16 byte-order mark, UTF-16. Anything else (Latin-1, Windows-1252) is refused with the line,
column and byte offset of the first byte that is not UTF-8, never turned silently into U+FFFD; a NUL
byte is refused with its line and column.

`Limits` bound what one file may cost whatever it holds: the longest line and header (a 200 MB file
without a newline is refused after the first megabytes, not read whole), and how far a gzip may
expand (in absolute bytes and as a ratio to its compressed size, so a decompression bomb stops
early). The portal passes its settings; the defaults suit the CLI.

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
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcore.columns import ColumnMapping  # noqa: F401 - re-exported: the mapping readers and validation take

FORMATS = ("csv", "tsv", "fasta", "sdf", "parquet")
DEFAULT_CHUNK_SIZE = 4096
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
MAX_REASON_CHARS = 1000  # a ReadError's reason (which may quote a header) is cut to this many
# A gzip may always expand to this much, whatever its ratio: a tiny but very repetitive file is fine.
_GZIP_RATIO_FLOOR = 64 * 1024 * 1024
# The canonical Parquet copy written by validation keeps each record's original line (or row) in this
# column, and the original file's name and unit in its schema metadata, so that whoever reads the
# copy (training, prediction) can still point at the file the researcher uploaded.
SOURCE_LINE_COL = "source_line"
SOURCE_NAME_KEY = b"mlcore.source"
SOURCE_UNIT_KEY = b"mlcore.source_unit"


class ReadError(Exception):
    """The file cannot be read at all; `str()` is the one-line message naming the file and reason."""

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        # Whatever the reason quotes (a header, a column list) comes from the file: keep it short.
        if len(reason) > MAX_REASON_CHARS:
            reason = f"{reason[:MAX_REASON_CHARS]}... ({len(reason) - MAX_REASON_CHARS} more characters)"
        self.source, self.reason, self.line = source, reason, line
        where = f"{source} line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Limits:
    """What reading one file may cost. None: no bound.

    Lines and the header are counted in bytes (before decoding); the header limit applies to the
    first line of CSV / TSV. The decompressed size of a gzip is bounded by `max_decompressed_bytes`
    and by `max_gzip_ratio` times its compressed size (but never below 64 MiB): ordinary text
    compresses 3 to 20 times, a decompression bomb hundreds of times.
    """

    max_line_bytes: int | None = 16 * 1024 * 1024
    max_header_bytes: int | None = 1024 * 1024
    max_decompressed_bytes: int | None = 16 * 1024**3
    max_gzip_ratio: float | None = 100.0


DEFAULT_LIMITS = Limits()


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


def _size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class _CappedGzip(io.RawIOBase):
    """A gzip stream that raises ReadError once it has produced more than `cap` bytes."""

    def __init__(self, path: Path, cap: int, reason: str) -> None:
        self._inner = gzip.open(path, "rb")
        self._cap, self._reason, self._source = cap, reason, path.name
        self._total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)
        self._total += n
        if self._total > self._cap:
            raise ReadError(self._source, self._reason)
        return n

    def close(self) -> None:
        self._inner.close()
        super().close()


def _open_binary(path: Path, limits: Limits = DEFAULT_LIMITS) -> io.BufferedIOBase:
    """The file's bytes, gunzipped when its first bytes say gzip (within `limits`)."""
    if not _is_gzip(path):
        return open(path, "rb")
    caps: list[tuple[int, str]] = []
    if limits.max_decompressed_bytes is not None:
        caps.append((limits.max_decompressed_bytes, f"the limit of {_size_text(limits.max_decompressed_bytes)}"))
    if limits.max_gzip_ratio is not None:
        packed = path.stat().st_size
        by_ratio = max(int(packed * limits.max_gzip_ratio), _GZIP_RATIO_FLOOR)
        caps.append((by_ratio, f"{limits.max_gzip_ratio:g} times its compressed size of {_size_text(packed)}"))
    if not caps:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    cap, why = min(caps)
    reason = (f"the gzip expands to more than {_size_text(cap)} ({why}); a file this compressible is "
              "corrupt or a decompression bomb: upload the data uncompressed or split it into smaller files")
    return io.BufferedReader(_CappedGzip(path, cap, reason), buffer_size=1 << 16)  # type: ignore[return-value]


def _text_encoding(path: Path, limits: Limits) -> str:
    """utf-16 after a UTF-16 byte-order mark, else utf-8-sig (UTF-8, dropping a UTF-8 BOM)."""
    with _open_binary(path, limits) as fh:
        head = fh.read(2)
    return "utf-16" if head in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _not_utf8(path: Path, limits: Limits) -> ReadError:
    """The first byte sequence that is not UTF-8, with its line, column and byte offset."""
    line, column, offset, carry = 1, 0, 0, b""
    with _open_binary(path, limits) as fh:
        while True:
            block = fh.read(1 << 20)
            data = carry + block
            try:
                data.decode("utf-8")
                good, bad = len(data), None
            except UnicodeDecodeError as exc:
                good = exc.start
                # A character cut in two by the block boundary is not an error: finish it next block.
                bad = None if (block and exc.reason == "unexpected end of data") else data[exc.start:exc.end]
            text = data[:good]
            newlines = text.count(b"\n")
            if newlines:
                line += newlines
                column = len(text[text.rfind(b"\n") + 1:].decode("utf-8"))
            else:
                column += len(text.decode("utf-8"))
            if bad is not None:
                shown = " ".join(f"{b:02x}" for b in bad[:4])
                return ReadError(
                    path.name,
                    f"column {column + 1} (byte offset {offset + good}): byte(s) {shown} are not UTF-8. "
                    "The file is probably Latin-1 or Windows-1252: save it as UTF-8 (for example "
                    f"`iconv -f latin1 -t utf-8 {path.name}`) and upload it again",
                    line=line,
                )
            offset += good
            carry = data[good:]
            if not block:
                return ReadError(path.name, "the file is not valid UTF-8 text", line=line)


_NUL_HINT = ("text files hold no NUL bytes; remove it (a bad export or a truncated copy leaves them), or export "
             "the data as CSV if this is a binary file")


def _too_long(source: str, line: int, cap: int, header: bool) -> ReadError:
    what = "the header" if header else "the line"
    hint = ("the first line must name the columns: is the file missing its line breaks, or not CSV / TSV at "
            "all?") if header else "is the file missing its line breaks?"
    return ReadError(source, f"{what} is longer than the limit of {cap:,} bytes; {hint}", line=line)


class _LineGuard(io.RawIOBase):
    """Bytes passed through unchanged, checked block by block before any is decoded: a line longer
    than its limit or a NUL byte raises ReadError naming the line. The checks run on whole blocks
    (C-speed searches), so the text layer above keeps its fast line iteration and never holds more
    than one over-long line's limit."""

    def __init__(self, inner: io.BufferedIOBase, source: str, limits: Limits, header: bool) -> None:
        self._inner, self._source = inner, source
        self._line_cap, self._header_cap = limits.max_line_bytes, limits.max_header_bytes if header else None
        self._line = 1  # the line the next byte belongs to
        self._run = 0  # bytes of that line already seen in earlier blocks

    def readable(self) -> bool:
        return True

    def _in_header(self) -> bool:
        return self._line == 1 and self._header_cap is not None

    def _cap(self) -> int | None:
        return self._header_cap if self._in_header() else self._line_cap

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer)
        if n:
            self._check(bytes(memoryview(buffer)[:n]))
        return n

    def _check(self, block: bytes) -> None:
        nul = block.find(b"\x00")
        if nul >= 0:
            before = block[:nul]
            line_start = max(before.rfind(b"\n"), before.rfind(b"\r")) + 1
            column = len(before[line_start:].decode("utf-8", "replace")) + (self._run if line_start == 0 else 0) + 1
            raise ReadError(self._source, f"a NUL byte at column {column}: {_NUL_HINT}",
                            line=self._line + before.count(b"\n"))
        start = 0
        while True:
            cap = self._cap()
            breaks = [i for i in (block.find(b"\n", start), block.find(b"\r", start)) if i >= 0]
            end = min(breaks) if breaks else -1
            length = self._run + ((end if end >= 0 else len(block)) - start)
            if cap is not None and length > cap:
                raise _too_long(self._source, self._line, cap, self._in_header())
            if end < 0:
                self._run = length
                return
            self._run = 0
            if block[end] == 10:  # b"\n" (a "\r\n" pair counts once: at its "\n")
                self._line += 1
            start = end + 1
            if self._line > 1 and (self._line_cap is None or len(block) - start <= self._line_cap):
                # Every remaining line is shorter than the block: only the last one can run on.
                rest = block[start:]
                last = max(rest.rfind(b"\n"), rest.rfind(b"\r"))
                if last < 0:
                    self._run = len(rest)
                else:
                    self._line += rest.count(b"\n")
                    self._run = len(rest) - last - 1
                return

    def close(self) -> None:
        self._inner.close()
        super().close()


@contextmanager
def _lines(path: Path, limits: Limits, *, header: bool = False) -> Iterator[Iterator[str]]:
    """The file's physical lines, decoded strictly and checked, as the csv module wants them:
    `with _lines(path, limits) as lines: for text in lines: ...`.

    Raises ReadError naming the line for a line longer than the limit (only the limit's worth is
    ever read), a NUL byte (with its column), or bytes that are not text in the file's encoding.
    With `header`, the first line is held to the header limit. UTF-8 files are iterated by the text
    layer itself (its C line loop): the checks run below it, on bytes.
    """
    encoding = _text_encoding(path, limits)
    csv.field_size_limit(limits.max_line_bytes or sys.maxsize)  # a quoted field spanning lines
    if encoding == "utf-16":
        with closing(_utf16_lines(path, limits, header=header)) as lines:
            yield lines
        return
    guarded = io.BufferedReader(_LineGuard(_open_binary(path, limits), path.name, limits, header), 1 << 16)
    with io.TextIOWrapper(guarded, encoding=encoding, errors="strict", newline="") as handle:
        try:
            yield handle
        except UnicodeDecodeError:  # raised wherever the lines were being read
            raise _not_utf8(path, limits) from None


def _utf16_lines(path: Path, limits: Limits, *, header: bool) -> Iterator[str]:
    """`_lines` for UTF-16 files, checked line by line (a UTF-16 character is at least 2 bytes)."""
    with io.TextIOWrapper(_open_binary(path, limits), encoding="utf-16", errors="strict", newline="") as handle:
        line_no = 0
        while True:
            is_header = header and line_no == 0
            cap = limits.max_header_bytes if is_header else limits.max_line_bytes
            chars = cap // 2 if cap is not None else None
            try:
                text = handle.readline(chars + 1 if chars is not None else -1)
            except UnicodeDecodeError:
                raise ReadError(path.name, "not valid UTF-16 text (the file starts with a UTF-16 byte-order mark)",
                                line=line_no + 1) from None
            if not text:
                return
            line_no += 1
            if chars is not None and len(text) > chars and not text.endswith(("\n", "\r")):
                raise _too_long(path.name, line_no, cap, is_header)  # type: ignore[arg-type]
            if "\x00" in text:
                raise ReadError(path.name, f"a NUL byte at column {text.index(chr(0)) + 1}: {_NUL_HINT}", line=line_no)
            yield text


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _nul_error(path: Path, head: bytes, encoding: str) -> ReadError | None:
    """A NUL byte in the first bytes, with its line and column (None when there is none)."""
    text = head.decode(encoding, "replace")
    at = text.find("\x00")
    if at < 0:
        return None
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return ReadError(path.name, f"binary file or a stray NUL byte at column {column}: not CSV, TSV, FASTA, SDF or "
                     "Parquet text; remove the NUL byte, or export the data as CSV if this is a binary file",
                     line=line)


def detect_format(path: str | Path, *, limits: Limits = DEFAULT_LIMITS) -> str:
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
        with _open_binary(path, limits) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise ReadError(path.name, f"unreadable file: {exc}") from None
    encoding = "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
    if not head.decode(encoding, "replace").lstrip("\ufeff").strip():
        raise ReadError(path.name, "empty file")
    nul = _nul_error(path, head, encoding)
    if nul is not None:
        raise nul
    if by_suffix:
        return by_suffix
    text = head.decode(encoding, "replace").lstrip("\ufeff")
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
    limits: Limits = DEFAULT_LIMITS,
) -> Reader:
    """Open `path` for streaming. `fmt` overrides detection; `delimiter` overrides CSV / TSV's;
    `limits` bound line lengths and decompression (exceeding them raises ReadError).

    `side_labels` (FASTA only): a CSV / TSV keyed by record id (`side_id_col`, default `id` or its
    first column) whose other columns join each FASTA record. It is read whole: it holds labels, one
    short row per record, not sequences.
    """
    path = Path(path)
    fmt = fmt or detect_format(path, limits=limits)
    if fmt not in FORMATS:
        raise ReadError(path.name, f"unknown format {fmt!r}; supported: {', '.join(FORMATS)}")
    if not path.exists():
        raise ReadError(path.name, f"file not found: {path}")
    if fmt in ("csv", "tsv"):
        return _delimited_open(path, fmt, chunk_size, delimiter or ("\t" if fmt == "tsv" else ","), limits)
    if fmt == "fasta":
        return _fasta_open(path, chunk_size, side_labels, side_id_col, limits)
    if fmt == "sdf":
        return _sdf_open(path, chunk_size, limits)
    return _parquet_open(path, chunk_size)


# ---------------------------------------------------------------------------------------------
# CSV / TSV


def _delimited_open(path: Path, fmt: str, chunk_size: int, delimiter: str, limits: Limits) -> Reader:
    with _lines(path, limits, header=True) as lines:
        try:
            header = next(csv.reader(lines, delimiter=delimiter), None)
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
        with _lines(path, limits, header=True) as handle:
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


def _fasta_open(path: Path, chunk_size: int, side_labels: str | Path | None, side_id_col: str | None,
                limits: Limits) -> Reader:
    first_header = None
    with _lines(path, limits) as handle:
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
        side_reader = reader_open(side_labels, limits=limits)
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

        with _lines(path, limits) as handle:
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


def _sdf_records(path: Path, limits: Limits) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(first line, mol block, properties) per SDF record."""
    start = 1
    block: list[str] = []
    props: dict[str, str] = {}
    in_props = False
    prop_name: str | None = None
    prop_lines: list[str] = []
    with _lines(path, limits) as handle:
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


def _sdf_open(path: Path, chunk_size: int, limits: Limits) -> Reader:
    records = _sdf_records(path, limits)
    first = next(records, None)
    records.close()
    if first is None:
        raise ReadError(path.name, "no SDF records")
    columns = [SDF_MOL_COLUMN, SDF_NAME_COLUMN] + [p for p in first[2] if p not in (SDF_MOL_COLUMN, SDF_NAME_COLUMN)]

    def iterate(wanted: Sequence[str]) -> Iterator[Chunk]:
        lines: list[int] = []
        cols: dict[str, list[Any]] = {c: [] for c in wanted}
        for line, block, props in _sdf_records(path, limits):
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
