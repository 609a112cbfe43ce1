"""Guessing a file's modality from its first bytes (mlcore.guess): what the upload form preselects."""

from __future__ import annotations

import gzip

import pytest

from mlcore.guess import HEAD_BYTES, file_guess


@pytest.mark.parametrize(("name", "content", "modality", "input_col"), [
    ("promoters.csv", b"sequence,label\nACGTACGTAA,1\nTTGACCATGA,0\n", "dna", "sequence"),
    ("reads.tsv", b"id\tread\ty\nr1\tACGUACGUAAGG\t1\nr2\tTTGACCATGANN\t0\n", "dna", "read"),
    ("sol.csv", b"id,seq,y\n1,MKTAYIAKQRQISFVKSHFSRQ,0.5\n2,MEEPQSDPSVEPPLSQETFSDLWK,1.2\n", "protein", "seq"),
    ("mols.csv", b"smiles,logS\nCCO,-0.3\nc1ccccc1O,-1.2\n", "smiles", "smiles"),
    ("mols2.csv", b"mol_id,structure,y\nm1,c1ccccc1,1\nm2,CC(=O)O,0\nm3,C#N,1\n", "smiles", "structure"),
    ("jets.csv", b"object_id,pt,eta,phi,energy,label\n1,1,2,3,4,0\n", "particles", "object_id"),
    ("curves.csv", b"object_id,time,flux,flux_err,band\n1,0.1,3,0.1,g\n", "lightcurve", "object_id"),
    ("table.csv", b"a,b,c,label\n0.1,0.2,0.3,1\n0.5,NA,0.2,0\n", "tabular", None),
    ("genes.fasta", b">x1 label=1\nACGTACGT\nACGT\n>x2\nTTTTGGCC\n", "dna", "sequence"),
    ("prot.fa", b">p1\nMKTAYIAKQRQISFVKSHFSRQ\n", "protein", "sequence"),
    ("mols.sdf", b"\n  RDKit\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n$$$$\n", "smiles", None),
    ("promoters.csv.gz", gzip.compress(b"sequence,label\nACGTACGTAA,1\n"), "dna", "sequence"),
])
def test_the_first_records_name_the_modality(name: str, content: bytes, modality: str, input_col: str | None) -> None:
    _, guess = file_guess(content, name)
    assert guess is not None and (guess.modality, guess.input_col) == (modality, input_col)
    assert guess.reason


@pytest.mark.parametrize(("name", "content"), [
    ("words.csv", b"name,colour\nfoo,red\nbar,blue\n"),  # nothing a modality reads
    ("empty.csv", b""),
    ("data.parquet", b"PAR1\x00\x00"),  # columns are read on the server, not from a head
])
def test_an_unclear_file_gets_no_guess(name: str, content: bytes) -> None:
    assert file_guess(content, name)[1] is None


def test_a_long_file_is_read_from_its_head_and_the_cut_line_is_dropped() -> None:
    rows = b"".join(b"ACGTACGTACGT,%d\n" % (i % 2) for i in range(20000))
    head, guess = file_guess((b"sequence,label\n" + rows)[:HEAD_BYTES], "big.csv")
    assert head.columns == ["sequence", "label"] and all(len(r) == 2 for r in head.rows)
    assert guess is not None and guess.modality == "dna"
