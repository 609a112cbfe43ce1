"""Duplicate records: 8-byte hashes of the canonical form (computed per chunk by `_hash64`), spilled
to 16 bucket files on disk and examined one bucket at a time, so memory stays flat whatever the file
size."""

from __future__ import annotations

import hashlib
import heapq
import os
import shutil
import tempfile
from typing import Any

import numpy as np


_N_BUCKETS = 16  # duplicate-detection spill files; memory at the end is 1/16 of the hashes


def _hash64(text: str) -> int:
    """A process-independent 8-byte hash (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class _Duplicates:
    """Duplicate records by canonical-input hash, spilled to bucket files so memory stays flat."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="labformer-dups-")
        self.files = [open(os.path.join(self.dir, f"{b:02d}.bin"), "wb") for b in range(_N_BUCKETS)]
        self.dtype = np.dtype([("key", "<u8"), ("line", "<i8"), ("target", "<u8")])

    def add(self, keys: np.ndarray, lines: list[int], target_keys: np.ndarray) -> None:
        rec = np.empty(len(keys), dtype=self.dtype)
        rec["key"], rec["line"], rec["target"] = keys, lines, target_keys
        bucket = (keys >> np.uint64(60)).astype(np.int64)  # top 4 bits pick the bucket
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(_N_BUCKETS + 1))
        for b in range(_N_BUCKETS):
            if bounds[b + 1] > bounds[b]:
                rec[order[bounds[b]:bounds[b + 1]]].tofile(self.files[b])

    def finish(self, limit: int) -> dict[str, Any]:
        """Counts plus the first `limit` duplicate groups in file order, with conflicting targets flagged."""
        for f in self.files:
            f.close()
        records = groups = conflicts = 0
        examples: list[tuple[int, list[int], bool]] = []
        try:
            for b in range(_N_BUCKETS):
                rec = np.fromfile(os.path.join(self.dir, f"{b:02d}.bin"), dtype=self.dtype)
                if len(rec) < 2:
                    continue
                rec = rec[np.lexsort((rec["line"], rec["key"]))]
                starts = np.flatnonzero(np.r_[True, rec["key"][1:] != rec["key"][:-1]])
                sizes = np.diff(np.r_[starts, len(rec)])
                dup = np.flatnonzero(sizes > 1)
                records += int((sizes[dup] - 1).sum())
                groups += len(dup)
                found = []
                for g in dup:
                    part = rec[starts[g]:starts[g] + sizes[g]]
                    conflict = bool((part["target"] != part["target"][0]).any())
                    conflicts += conflict
                    found.append((int(part["line"][0]), part["line"][:20].tolist(), conflict))
                examples = heapq.nsmallest(limit, examples + found)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return {"records": records, "groups": groups, "conflicting_groups": conflicts,
                "examples": [{"lines": lines, "conflicting_targets": c} for _, lines, c in examples]}
