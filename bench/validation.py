"""Validation throughput and memory: 1M SMILES and 1M DNA records through `mlcore.validation`.

What runs: the real code path the portal's validation task and `python -m mlcore validate` use,
`validate_file(..., policy="skip", output=<canonical.parquet>)` (reader, per-record checks,
targets, duplicate detection, the canonical Parquet copy), on generated CSV files in a temp dir.

The SMILES generator (`smiles_drug_like`) assembles drug-like molecules from fragments the way
medicinal chemists draw them: a capping group, a linker, then a ring system (benzene, pyridine,
piperidine, morpholine, piperazine, thiophene, furan, imidazole, indole, naphthalene, cyclobutane,
cyclohexane) whose one substituent slot holds either a terminal group (halogen, methoxy, CF3,
nitrile, carboxylic acid, nitro, a stereocentre...) or, with probability 0.7 up to depth 3, another
linker + ring system. Sizes vary from ~8 to ~60 heavy atoms (mean ~24, like approved oral drugs).
About 1% of the records are deliberately broken the ways real uploads are (an unclosed ring, a
pentavalent carbon, an unknown element, a non-numeric target) so the failure path is exercised too,
and the combinatorics produce natural duplicates. The DNA file holds 1M sequences of 50-250 bases
with ~0.5% carrying ambiguity codes and ~0.2% invalid characters.

Memory: a background thread samples, every 0.1 s from /proc, the memory of this process plus all
its children (the worker processes); `peak_rss_mb` is the largest simultaneous sum of their PSS
(resident pages, shared pages divided among the processes sharing them: the physical memory held).
`peak_rss_sum_mb` sums plain RSS instead, which counts pages the forked workers share with the
parent once per process. A smaller run (200k records) is measured first so that "flat in file
size" is visible side by side.

Usage: `python bench/validation.py [--n 1000000] [--workers N]`. The last line printed is JSON:
{"smiles_per_s": x, "dna_per_s": y, "peak_rss_mb": z, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from mlcore.validation import ValidationOptions, validate_file  # noqa: E402

RINGS = [
    "c{a}ccc({X})cc{a}", "c{a}ccc({X})nc{a}", "C{a}CCN({X})CC{a}", "C{a}CN({X})CCO{a}", "C{a}CCC({X})CC{a}",
    "c{a}cc({X})sc{a}", "c{a}cc({X})oc{a}", "c{a}nc({X})c[nH]{a}", "N{a}CCN({X})CC{a}",
    "c{a}ccc{b}[nH]cc({X})c{b}c{a}", "c{a}ccc{b}ccc({X})cc{b}c{a}", "C{a}CC({X})C{a}",
]
LINKERS = ["", "C", "CC", "C(=O)N", "NC(=O)", "O", "S(=O)(=O)N", "CO", "N", "C(=O)", "OC", "C=C"]
TERMINALS = ["F", "Cl", "Br", "C", "OC", "C(F)(F)F", "C#N", "O", "N", "C(=O)O", "[N+](=O)[O-]", "CC", "N(C)C",
             "C(C)C", "[C@@H](C)O", "[C@H](N)C(=O)O"]
CAPS = ["C", "CC", "OC", "FC", "ClC", "NC", "CC(C)", "O=C(O)C", "CN(C)C", "N#CC", "C1CC1"]
BROKEN = ["C1CC(N)CC", "CC(C)(C)(C)(C)C", "c1ccccc1(", "CC[Xx]C", "c1cccc1"]


def _ring_system(rng: random.Random, depth: int) -> str:
    template = rng.choice(RINGS)
    if depth < 3 and rng.random() < 0.7:
        slot = rng.choice(LINKERS) + _ring_system(rng, depth + 1)
    else:
        slot = rng.choice(TERMINALS)
    # Ring-closure digits by depth: a nested ring never reuses a still-open closure number.
    return template.replace("{a}", str(2 * depth + 1)).replace("{b}", str(2 * depth + 2)).replace("{X}", slot)


def smiles_drug_like(rng: random.Random) -> str:
    """One drug-like SMILES: cap + linker + (recursively substituted) ring system."""
    return rng.choice(CAPS) + rng.choice(LINKERS) + _ring_system(rng, 0)


def write_smiles_csv(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        fh.write("smiles,target\n")
        for _ in range(n):
            r = rng.random()
            smiles = rng.choice(BROKEN) if r < 0.008 else smiles_drug_like(rng)
            target = "n/a?" if 0.008 <= r < 0.010 else f"{rng.gauss(0, 1):.4f}"
            fh.write(f"{smiles},{target}\n")


def write_dna_csv(path: Path, n: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "w") as fh:
        fh.write("sequence,label\n")
        for _ in range(n):
            seq = "".join(rng.choices("ACGT", k=rng.randint(50, 250)))
            r = rng.random()
            if r < 0.005:
                k = rng.randrange(len(seq))
                seq = seq[:k] + rng.choice("RYSWKM") + seq[k + 1:]
            elif r < 0.007:
                k = rng.randrange(len(seq))
                seq = seq[:k] + rng.choice("XQ-") + seq[k + 1:]
            fh.write(f"{seq},{rng.randint(0, 1)}\n")


class RssSampler:
    """Peak memory of this process plus all its descendants (the worker processes), from /proc.

    `peak_mb` sums each process's PSS (proportional set size: its resident pages, with pages shared
    between processes divided among them), i.e. the physical memory the process tree holds. Plain
    RSS summed over processes would count the pages forked workers share with the parent once per
    process; that sum is kept too, as `peak_rss_sum_mb`, for comparison.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak_kb, self.peak_rss_sum_kb, self._stop = interval, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _field_kb(path: str, field: str) -> int:
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith(field):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    @classmethod
    def _rss_kb(cls, pid: int) -> int:
        return cls._field_kb(f"/proc/{pid}/status", "VmRSS:")

    @classmethod
    def _pss_kb(cls, pid: int) -> int:
        return cls._field_kb(f"/proc/{pid}/smaps_rollup", "Pss:") or cls._rss_kb(pid)  # older kernels: RSS

    @staticmethod
    def _children(pid: int) -> list[int]:
        out: list[int] = []
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as fh:
                    out += [int(c) for c in fh.read().split()]
        except OSError:
            pass
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            todo, pss, rss = [os.getpid()], 0, 0
            while todo:
                pid = todo.pop()
                pss += self._pss_kb(pid)
                rss += self._rss_kb(pid)
                todo += self._children(pid)
            self.peak_kb = max(self.peak_kb, pss)
            self.peak_rss_sum_kb = max(self.peak_rss_sum_kb, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


def run(path: Path, out: Path, task: str, workers: int | None) -> dict[str, Any]:
    with RssSampler() as rss:
        t0 = time.perf_counter()
        result = validate_file(path, task=task, policy="skip", output=out,
                               options=ValidationOptions(workers=workers))
        elapsed = time.perf_counter() - t0
    return {"rows": result.rows, "valid": result.valid, "invalid": result.invalid, "status": result.status,
            "seconds": round(elapsed, 2), "per_s": round(result.rows / elapsed), "peak_rss_mb": round(rss.peak_mb, 1),
            "peak_rss_sum_mb": round(rss.peak_rss_sum_kb / 1024, 1),
            "totals": result.totals, "duplicates": result.stats.get("duplicates", {}).get("records")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=200_000, help="the smaller run for the memory comparison")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="labformer-bench-") as tmp:
        d = Path(tmp)
        results: dict[str, dict[str, Any]] = {}
        for name, writer, task in (("smiles", write_smiles_csv, "molecule-regression"),
                                   ("dna", write_dna_csv, "dna-classification")):
            for size in (args.small, args.n):
                path = d / f"{name}_{size}.csv"
                t0 = time.perf_counter()
                writer(path, size)
                gen = time.perf_counter() - t0
                res = run(path, d / f"{name}_{size}.parquet", task, args.workers)
                res["generate_seconds"] = round(gen, 1)
                res["file_mb"] = round(path.stat().st_size / 2**20, 1)
                results[f"{name}_{size}"] = res
                print(f"{name} {size:>9,} records ({res['file_mb']} MB): {res['per_s']:,}/s, "
                      f"{res['seconds']} s, peak PSS {res['peak_rss_mb']} MB (RSS sum {res['peak_rss_sum_mb']}), "
                      f"valid {res['valid']:,}, "
                      f"problems {res['totals']}, duplicates {res['duplicates']}", flush=True)
                path.unlink()
    big_s, big_d = results[f"smiles_{args.n}"], results[f"dna_{args.n}"]
    print(json.dumps({
        "smiles_per_s": big_s["per_s"], "dna_per_s": big_d["per_s"],
        "peak_rss_mb": max(big_s["peak_rss_mb"], big_d["peak_rss_mb"]),
        "peak_rss_mb_small": max(results[f"smiles_{args.small}"]["peak_rss_mb"],
                                 results[f"dna_{args.small}"]["peak_rss_mb"]),
        "peak_rss_sum_mb": max(big_s["peak_rss_sum_mb"], big_d["peak_rss_sum_mb"]),
        "n": args.n, "small": args.small, "cpus": len(os.sched_getaffinity(0)),
    }))


if __name__ == "__main__":
    main()
