"""Running chunks: in this process, or over a process pool with results in file order.

SMILES dominate the cost (RDKit parse + canonicalization, ~85 us per drug-like molecule per core), so
their chunks are validated by a pool of worker processes while the main process reads, orders
results and writes. The pool's initializer and task (`_worker_init`, `_worker_chunk`) and the plan
they keep live here, importable by this module's path.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import Any

from mlcore.readers import Chunk
from mlcore.validation.chunks import _ChunkResult, validate_chunk
from mlcore.validation.options import ValidationOptions
from mlcore.validation.plan import _Plan


_WORKER_PLAN: _Plan | None = None
_WORKER_MAX_PROBLEMS = 1000


def _worker_init(plan: _Plan, max_problems: int) -> None:
    global _WORKER_PLAN, _WORKER_MAX_PROBLEMS
    _WORKER_PLAN, _WORKER_MAX_PROBLEMS = plan, max_problems


def _worker_chunk(chunk: Chunk) -> _ChunkResult:
    assert _WORKER_PLAN is not None
    return validate_chunk(_WORKER_PLAN, chunk, max_problems=_WORKER_MAX_PROBLEMS)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pool_context() -> Any:
    """fork where available: a spawned child re-runs the caller's main module, which crashes the pool
    when a script lacks an `if __name__ == "__main__"` guard. The forked child only runs RDKit and
    numpy on pickled chunks, never the parent's pyarrow or Celery threads, so what those threads held
    at fork time does not matter to it."""
    import multiprocessing

    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def _map_chunks(plan: _Plan, chunks: Iterator[Chunk], options: ValidationOptions,
                notes: list[str]) -> Iterator[_ChunkResult]:
    """Chunk results in file order: in this process, or from a pool of worker processes (SMILES)."""
    workers = options.workers if options.workers is not None else _cpu_count()
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None) if plan.modality == "smiles" and workers > 1 else None
    if second is None:  # one chunk, or work too light to pay for processes: stay in this process
        yield validate_chunk(plan, first, max_problems=options.max_problems)
        for chunk in chunks:
            yield validate_chunk(plan, chunk, max_problems=options.max_problems)
        return
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pending: deque[tuple[Any, Chunk]] = deque()
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_worker_init,
                                   initargs=(plan, options.max_problems))
        pending.append((pool.submit(_worker_chunk, first), first))
        pending.append((pool.submit(_worker_chunk, second), second))
    except (OSError, AssertionError, ValueError, BrokenProcessPool) as exc:  # e.g. a daemonic process
        notes.append(f"validated in one process: worker pool unavailable ({exc})")
        yield validate_chunk(plan, first, max_problems=options.max_problems)
        yield validate_chunk(plan, second, max_problems=options.max_problems)
        for chunk in chunks:
            yield validate_chunk(plan, chunk, max_problems=options.max_problems)
        return
    # Bounded read-ahead: a few chunks per worker in flight, so memory does not grow with the file
    # while the workers never wait for the reader.
    in_flight = 2 * workers + 2
    broken = False
    try:
        for chunk in chunks:
            if broken:
                pending.append((None, chunk))
            else:
                try:
                    pending.append((pool.submit(_worker_chunk, chunk), chunk))
                except BrokenProcessPool:
                    broken = True
                    pending.append((None, chunk))
            while len(pending) >= in_flight:
                yield _result(pending.popleft(), plan, options, notes)
        while pending:
            yield _result(pending.popleft(), plan, options, notes)
    finally:
        for fut, _ in pending:
            if fut is not None:
                fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _result(item: tuple[Any, Chunk], plan: _Plan, options: ValidationOptions, notes: list[str]) -> _ChunkResult:
    """A submitted chunk's result; if its worker died (killed, out of memory), the chunk is validated
    here instead, so a lost process costs time, never records."""
    from concurrent.futures.process import BrokenProcessPool

    future, chunk = item
    if future is not None:
        try:
            return future.result()
        except BrokenProcessPool as exc:
            if not any(n.startswith("worker pool broke") for n in notes):
                notes.append(f"worker pool broke ({exc}); the remaining chunks were validated in one process")
    return validate_chunk(plan, chunk, max_problems=options.max_problems)
