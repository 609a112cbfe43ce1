"""Validation has bounds: files built to exhaust a worker (a 200 MB file with no line break, a gzip
that expands 1000-fold) and files in the wrong encoding end `invalid` with one readable reason, on
the real stack: uploaded through the portal's service, validated by a real Celery worker process
against PostgreSQL."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from portal.datasets.models import Dataset
from portal.datasets.services import dataset_create
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import WorkerProcess, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GIB = 1024**3


def _upload(file: object, *, filename: str, modality: str = "dna", schema: dict | None = None) -> Dataset:
    """Upload as the portal does (stored, row committed, validation sent to the broker on commit)."""
    membership = MembershipFactory()
    return dataset_create(owner=membership.user, lab=membership.lab, name=filename, modality=modality,
                          file=file, filename=filename, schema=schema or {})


def _finished(dataset: Dataset, worker: WorkerProcess, timeout: float = 300) -> Dataset:
    wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status in ("ready", "invalid"), timeout,
             f"validation of {dataset.original_filename}", worker)
    return Dataset.objects.get(pk=dataset.pk)


def _peak_rss_bytes(pid: int) -> int:
    """VmHWM (the peak resident set) of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def _pool_children(worker: WorkerProcess) -> list[int]:
    pid = worker.proc.pid
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_single_line_200mb_file_ends_invalid_with_one_reason_under_1gb(start_worker, tmp_path: Path) -> None:  # noqa: ANN001
    worker = start_worker()
    children = _pool_children(worker)
    assert children, "the worker has no pool process"
    big = tmp_path / "one_line.csv"
    block = b"ACGT," * (1 << 18)  # 1.25 MiB, no line break anywhere
    with open(big, "wb") as fh:
        for _ in range(160):
            fh.write(block)
    assert big.stat().st_size >= 200 * 10**6
    dataset = None
    try:
        with open(big, "rb") as fh:
            dataset = _upload(File(fh, name=big.name), filename=big.name)
        big.unlink()  # the portal holds its own copy now
        dataset = _finished(dataset, worker)
        assert dataset.status == Dataset.Status.INVALID
        report = dataset.validation_report
        message = report["error"]["message"]
        assert "header is longer than the limit" in message, message
        assert len(message) < 1000  # the "header" is named, never quoted
        assert len(report["problems"]) == 1 and report["problems"][0]["line"] == 1
        peaks = {pid: _peak_rss_bytes(pid) for pid in children + [worker.proc.pid]}
        assert max(peaks.values()) < 1 * GIB, f"worker peak memory {peaks}"
    finally:  # 200 MB twice over is too much to leave in the kept pytest folders of a shared disk
        big.unlink(missing_ok=True)
        if dataset is not None:
            default_storage.delete(dataset.original_file.name)


def test_gzip_bomb_stops_at_the_decompressed_cap(start_worker, tmp_path: Path) -> None:  # noqa: ANN001
    # 455 MiB of DNA records of 1 MiB each (valid lines, well under the line limit), gzipped to
    # under a megabyte: concatenated gzip members, so building it costs one compression of 1 MiB.
    bomb = tmp_path / "bomb.csv.gz"
    member = gzip.compress(b"ACGT" * (1 << 18) + b"\n")
    with open(bomb, "wb") as fh:
        fh.write(gzip.compress(b"sequence\n"))
        for _ in range(455):
            fh.write(member)
    packed = bomb.stat().st_size
    assert packed < 2 * 10**6
    worker = start_worker()
    dataset = _upload(ContentFile(bomb.read_bytes(), name=bomb.name), filename=bomb.name,
                      schema={"input_cols": ["sequence"]})
    dataset = _finished(dataset, worker)
    assert dataset.status == Dataset.Status.INVALID
    message = dataset.validation_report["error"]["message"]
    assert "the gzip expands to more than 64.0 MiB" in message and "decompression bomb" in message, message
    assert dataset.validation_report["rows"] == 0  # it stopped, it did not validate 455 MiB of records


def test_encoding_latin1_refused_with_line_and_offset_utf16_and_bom_accepted(start_worker) -> None:  # noqa: ANN001
    worker = start_worker()
    rows = "sequence,label,note\nACGTACGT,1,plain\nTTGACCAA,0,Jos\u00e9\nACGTTTGA,1,x\nGGCCAATT,0,y\n"
    latin1 = _upload(ContentFile(rows.encode("latin-1")), filename="latin1.csv", schema={"input_cols": ["sequence"]})
    utf16 = _upload(ContentFile(rows.encode("utf-16")), filename="utf16.csv", schema={"input_cols": ["sequence"]})
    bom = _upload(ContentFile(b"\xef\xbb\xbf" + rows.encode()), filename="bom.csv", schema={"input_cols": ["sequence"]})
    latin1, utf16, bom = (_finished(d, worker) for d in (latin1, utf16, bom))
    assert latin1.status == Dataset.Status.INVALID
    message = latin1.validation_report["error"]["message"]
    offset = rows.encode("latin-1").index(b"\xe9")
    assert "latin1.csv line 3: column 15" in message and f"byte offset {offset}" in message, message
    assert "byte(s) e9 are not UTF-8" in message and "save it as UTF-8" in message
    for ok in (utf16, bom):
        assert ok.status == Dataset.Status.READY, ok.validation_report
        assert ok.row_count == 4 and "\ufffd" not in str(ok.validation_report)


def test_encoding_nul_byte_is_located_by_line_and_column(start_worker) -> None:  # noqa: ANN001
    worker = start_worker()
    # The NUL sits past the first 64 KiB the format sniffer reads, so the line reader must find it.
    rows = ["sequence,label"] + [f"ACGTACGTAC,{i % 2}" for i in range(8000)]
    rows[7001] = "ACGT\x00ACGTAC,1"
    dataset = _upload(ContentFile("\n".join(rows).encode() + b"\n"), filename="nul.csv",
                      schema={"input_cols": ["sequence"]})
    early = _upload(ContentFile(b"sequence,label\nAC\x00GT,1\n"), filename="nul_early.csv")
    dataset, early = _finished(dataset, worker), _finished(early, worker)
    for ds, line, column in ((dataset, 7002, 5), (early, 2, 3)):
        assert ds.status == Dataset.Status.INVALID
        message = ds.validation_report["error"]["message"]
        assert f"line {line}: " in message and f"NUL byte at column {column}" in message, message
        assert ds.validation_report["problems"][0]["line"] == line
