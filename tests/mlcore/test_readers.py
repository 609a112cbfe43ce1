"""mlcore.readers: formats, detection, line numbers, long-format grouping, unreadable files."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcore.readers import ReadError, detect_format, group_long, reader_open


def _all(reader, columns):  # noqa: ANN001, ANN202
    lines, cols, errors = [], {c: [] for c in columns}, []
    for chunk in reader.chunks(columns):
        errors += [(chunk.lines[e[0]], e[1]) for e in chunk.errors]
        lines += chunk.lines
        for c in columns:
            cols[c] += chunk.columns[c]
    return lines, cols, errors


def test_csv_lines_count_quoted_newlines_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    # line 1 header; 2-3 one record (quoted newline); 4 record; 5 blank; 6 record; 7 wrong field count
    path.write_text('smiles,note\nCCO,"two\nlines"\nCCN,x\n\nCCC,"a ""quoted"" word"\nCCCl\n')
    reader = reader_open(path, chunk_size=2)
    assert reader.columns == ["smiles", "note"] and reader.unit == "line"
    lines, cols, errors = _all(reader, ["smiles", "note"])
    assert lines == [2, 4, 6, 7]
    assert cols["note"][:3] == ["two\nlines", "x", 'a "quoted" word']
    assert errors == [(7, "field_count")]


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path: Path) -> None:
    data = b"sequence\tlabel\nACGT\t1\nGGCC\t0\n"
    for name in ("seqs.tsv", "seqs.tsv.gz"):  # a gzipped file without .gz in its name still reads
        path = tmp_path / name
        path.write_bytes(gzip.compress(data))
        reader = reader_open(path)
        assert reader.format == "tsv"
        assert _all(reader, ["sequence", "label"])[1] == {"sequence": ["ACGT", "GGCC"], "label": ["1", "0"]}


def test_delimiter_sniffed_without_a_known_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("a\tb\n1\t2\n")
    assert detect_format(path) == "tsv"
    path.write_text(">s1\nACGT\n")
    assert detect_format(path) == "fasta"


def test_fasta_header_fields_lines_and_multiline_sequences(tmp_path: Path) -> None:
    path = tmp_path / "s.fa"
    path.write_text(">seq1 label=1 source=\"a b\"\nACGT\nacgt\n\n>seq2 label=0\nTTTT\n;comment\n>seq3\nGG\n")
    reader = reader_open(path, chunk_size=2)
    assert reader.columns[:3] == ["id", "sequence", "description"] and "label" in reader.columns
    lines, cols, _ = _all(reader, ["id", "sequence", "label", "source"])
    assert lines == [1, 5, 8]
    assert cols["sequence"] == ["ACGTacgt", "TTTT", "GG"]
    assert cols["label"] == ["1", "0", None]
    assert cols["source"] == ["a b", None, None]


def test_fasta_side_labels_joined_by_id(tmp_path: Path) -> None:
    fasta = tmp_path / "s.fasta"
    fasta.write_text(">a\nAC\n>b\nGT\n>c\nTT\n")
    side = tmp_path / "labels.csv"
    side.write_text("id,label\nb,0\na,1\n")
    reader = reader_open(fasta, side_labels=side)
    lines, cols, errors = _all(reader, ["id", "label"])
    assert cols["label"] == ["1", "0", None]
    assert errors == [(5, "side_row_missing")]


def test_sdf_records_first_lines_and_properties(tmp_path: Path) -> None:
    from rdkit import Chem

    blocks = []
    for smiles, value in (("CCO", "1.5"), ("c1ccccc1", "2.5")):
        mol = Chem.MolFromSmiles(smiles)
        mol.SetProp("_Name", smiles)
        mol.SetProp("logS", value)
        blocks.append(Chem.MolToMolBlock(mol) + "> <logS>\n" + value + "\n\n$$$$\n")
    path = tmp_path / "m.sdf"
    path.write_text("".join(blocks))
    reader = reader_open(path)
    assert reader.format == "sdf" and "logS" in reader.columns
    lines, cols, _ = _all(reader, ["mol", "name", "logS"])
    first_len = blocks[0].count("\n")
    assert lines == [1, first_len + 1]
    assert cols["name"] == ["CCO", "c1ccccc1"] and cols["logS"] == ["1.5", "2.5"]
    assert Chem.MolToSmiles(Chem.MolFromMolBlock(cols["mol"][1])) == "c1ccccc1"


def test_parquet_rows_and_list_columns(tmp_path: Path) -> None:
    path = tmp_path / "jets.parquet"
    table = pa.table({"object_id": ["j1", "j2", "j3"], "pt": [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]], "label": [0, 1, 0]})
    pq.write_table(table, path, row_group_size=2)
    reader = reader_open(path, chunk_size=2)
    assert reader.unit == "row" and reader.list_columns == frozenset({"pt"})
    lines, cols, _ = _all(reader, ["object_id", "pt", "label"])
    assert lines == [1, 2, 3] and cols["pt"][2] == [4.0, 5.0, 6.0] and cols["label"] == [0, 1, 0]


def test_group_long_contiguous_objects_and_non_contiguous_rows(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("object_id,pt,label\nj1,1,0\nj1,2,0\nj2,3,1\nj1,4,0\nj3,5,1\nj3,6,0\n")
    reader = reader_open(path, chunk_size=2)  # objects straddle chunk boundaries
    chunks = list(group_long(reader.chunks(["object_id", "pt", "label"]), id_col="object_id",
                             element_cols=["pt"], record_cols=["label"], max_elements=10, chunk_size=2))
    lines = [line for c in chunks for line in c.lines]
    pts = [p for c in chunks for p in c.columns["pt"]]
    elines = [e for c in chunks for e in c.element_lines]
    errors = [(c.lines[e[0]], e[1]) for c in chunks for e in c.errors]
    assert lines == [2, 4, 5, 6] and pts == [["1", "2"], ["3"], ["4"], ["5", "6"]]
    assert elines[0] == [2, 3] and elines[3] == [6, 7]
    assert errors == [(5, "not_contiguous"), (6, "object_conflict")]
    message = next(e[3] for c in chunks for e in c.errors if e[1] == "not_contiguous")
    assert "began on line 2" in message


def test_group_long_caps_a_runaway_object(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("object_id,pt\n" + "".join(f"j1,{i}\n" for i in range(50)))
    reader = reader_open(path)
    (chunk,) = list(group_long(reader.chunks(["object_id", "pt"]), id_col="object_id", element_cols=["pt"],
                               record_cols=[], max_elements=8))
    assert len(chunk.columns["pt"][0]) == 8
    assert [e[1] for e in chunk.errors] == ["too_many_elements"] and "50 rows" in chunk.errors[0][3]


@pytest.mark.parametrize("content,name,reason", [
    (None, "missing.csv", "file not found"),
    (b"", "empty.csv", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "image.csv", "binary file"),
    (b"a,b\n1,2\n", "fake.parquet", "not a Parquet file"),
    (b"PAR1 truncated", "broken.parquet", "unreadable Parquet"),
    (b"\n\n", "blank.csv", "empty file"),
    (b"ACGT\n>s1\nAC\n", "s.fasta", "before the first '>'"),
])
def test_unreadable_files_raise_one_line_read_errors(tmp_path: Path, content: bytes | None, name: str,
                                                     reason: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReadError) as err:
        reader_open(path)
    assert reason in str(err.value) and name in str(err.value) and "\n" not in str(err.value)


def test_missing_column_is_a_read_error(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ReadError, match="no column 'smiles'"):
        reader_open(path).chunks(["smiles"])


# --- bounds and encodings -----------------------------------------------------------------------

def test_limits_refuse_a_long_line_and_a_long_header_naming_the_line(tmp_path: Path) -> None:
    from mlcore.readers import Limits

    limits = Limits(max_line_bytes=100, max_header_bytes=50)
    wide = tmp_path / "wide.csv"
    wide.write_text("a" * 60 + "\n1\n")
    with pytest.raises(ReadError, match="header is longer than the limit of 50 bytes") as exc:
        reader_open(wide, limits=limits)
    assert exc.value.line == 1 and "aaaa" not in str(exc.value)
    long_row = tmp_path / "long.csv"
    long_row.write_text("sequence\nACGT\n" + "A" * 150 + "\nACGT\n")
    with pytest.raises(ReadError, match="line is longer than the limit of 100") as exc:
        list(reader_open(long_row, limits=limits).chunks(["sequence"]))
    assert exc.value.line == 3
    # Far into a file (past the first blocks read), with Windows line ends, the line is still named.
    far = tmp_path / "far.csv"
    far.write_bytes(b"sequence\r\n" + b"ACGT\r\n" * 50_000 + b"A" * 150 + b"\r\nACGT\r\n")
    with pytest.raises(ReadError, match="line is longer than the limit of 100") as exc:
        list(reader_open(far, limits=limits).chunks(["sequence"]))
    assert exc.value.line == 50_002
    assert sum(len(c) for c in reader_open(far).chunks(["sequence"])) == 50_002  # default limits: fine
    # A quoted field running over many short lines is held to the same bound.
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('sequence\n"' + "ACGT\n" * 40 + '"\n')
    with pytest.raises(ReadError, match="field larger than field limit"):
        list(reader_open(quoted, limits=limits).chunks(["sequence"]))


def test_read_error_cuts_what_it_quotes() -> None:
    error = ReadError("x.csv", "no column 'y' (columns: " + "c," * 10_000 + ")")
    assert len(str(error)) < 1100 and "more characters" in str(error)


def test_gzip_cap_by_ratio_and_by_size(tmp_path: Path) -> None:
    import gzip

    from mlcore.readers import Limits

    packed = tmp_path / "x.csv.gz"
    packed.write_bytes(gzip.compress(b"sequence\n" + b"ACGT" * 300_000 + b"\n"))
    with pytest.raises(ReadError, match=r"expands to more than 1000.0 KiB \(the limit of 1000.0 KiB\)"):
        list(reader_open(packed, limits=Limits(max_decompressed_bytes=1_024_000)).chunks(["sequence"]))
    # Within both bounds the same file reads in full.
    chunks = list(reader_open(packed, limits=Limits(max_decompressed_bytes=2_000_000)).chunks(["sequence"]))
    assert len(chunks[0].columns["sequence"][0]) == 1_200_000


def test_encodings_utf8_bom_and_utf16_decode_latin1_is_refused_with_its_place(tmp_path: Path) -> None:
    text = "id,name\n1,Zo\u00eb\n2,\u00c5sa\n"
    for encoding, data in (("bom", b"\xef\xbb\xbf" + text.encode()), ("utf16", text.encode("utf-16")),
                           ("utf16be", b"\xfe\xff" + text.encode("utf-16-be"))):
        path = tmp_path / f"{encoding}.csv"
        path.write_bytes(data)
        reader = reader_open(path)
        assert reader.columns == ["id", "name"]
        assert next(reader.chunks(["name"])).columns["name"] == ["Zo\u00eb", "\u00c5sa"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode("latin-1"))
    with pytest.raises(ReadError) as exc:
        list(reader_open(latin).chunks(["name"]))
    assert exc.value.line == 2 and "column 5 (byte offset 12): byte(s) eb are not UTF-8" in str(exc.value)


def test_validation_time_limit_ends_with_one_reason(tmp_path: Path) -> None:
    from mlcore.validation import ValidationOptions, validate_file

    path = tmp_path / "many.csv"
    path.write_text("sequence\n" + "ACGTACGT\n" * 20_000)
    with pytest.raises(ReadError, match=r"validation stopped after 0 s \(the time limit\) at 1,000 records"):
        validate_file(path, modality="dna", options=ValidationOptions(chunk_size=1000, max_seconds=0))
    assert validate_file(path, modality="dna", options=ValidationOptions(chunk_size=1000)).ok
