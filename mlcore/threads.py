"""How many CPU threads torch gets: the one rule `python -m mlcore` and the workers share.

Torch's default (one intra-op thread per core the process sees) is wrong for this project's common
case: a small model trained on a machine shared with other work (other workers, the web server,
other people's jobs). A tiny model's matrix multiplies are too small to be worth splitting, and
threads that must meet at every operation wait on each other as soon as one core is busy elsewhere:
measured on 2 shared cores, one tiny DNA training step took 65 ms with 1 thread and 600 ms with 2,
and a worker training with torch's default 2 threads ran 15x slower than the same run from the CLI
with 1. So the choice (`threads_choose`) takes

- the cores this process may run on (`os.sched_getaffinity`: a container's or `taskset`'s limit,
  not the machine's count),
- how many processes share them (a worker's pool size; DDP ranks on one machine),
- and the model's width: one intra-op thread per `WIDTH_PER_THREAD` of d_model (tiny 1, small 2,
  base 4), never more than the process's share of the cores,

with, in this order of precedence, an explicit request (`--threads`), `LABFORMER_TORCH_THREADS`
(`N` or `N,M`: intra-op N, inter-op M) and `OMP_NUM_THREADS` (torch's own convention, also what
torchrun and the worker's DDP ranks set) overriding it.

Inter-op threads default to 1: nothing here runs independent operators in parallel (no
`torch.jit.fork`), so that pool would only add idle threads. And spinning is off by default
(`spin_off`): OpenMP threads that finish a parallel region otherwise busy-wait for the next one
(libgomp's OMP_WAIT_POLICY, Intel OpenMP's KMP_BLOCKTIME), taking a core from whoever else needs
it. Both variables are read once, when torch's OpenMP library loads, so `spin_off` must run before
the first `import torch`; a value already in the environment is left alone.

This module imports no torch at import time (the web process and the worker's entry read it first);
only `threads_apply` and `threads_describe` load it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, dataclass
from typing import Any

from mlcore import catalog

THREADS_ENV = "LABFORMER_TORCH_THREADS"
# d_model per intra-op thread: below this width a matmul's rows are too few to split profitably.
WIDTH_PER_THREAD = 64
# Set before torch loads unless already set: threads sleep instead of spinning between regions.
SPIN_OFF_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


@dataclass(frozen=True)
class ThreadChoice:
    """torch's intra-op and inter-op thread counts for this process, and why."""

    intra: int
    inter: int
    cores: int  # CPUs this process may run on
    sharing: int  # processes expected to train on those cores at once
    reason: str  # what decided `intra`: "--threads", LABFORMER_TORCH_THREADS, OMP_NUM_THREADS, or the rule

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cores_available() -> int:
    """CPUs this process may run on (its affinity mask; the machine's count where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def preset_width(preset: str) -> int:
    """The encoder width (d_model) of a size preset."""
    return int(catalog.PRESETS[preset]["d_model"])


def _positive(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name}={value!r}: expected a whole number of threads >= 1")
    return number


def threads_choose(*, d_model: int | None, sharing: int = 1, requested: int | None = None,
                   environ: Mapping[str, str] | None = None, cores: int | None = None) -> ThreadChoice:
    """The thread counts for training (or predicting with) a model of width `d_model`.

    `d_model` None: batched prediction with a model of unknown size, which gains nothing from more
    than one thread (measured in workers/predict.py: 1.1 ms a record with one thread, 5 ms with two).
    `sharing`: processes that train on the same cores at once (a worker's concurrency).
    `requested` (the CLI's --threads) wins over the environment; see the module docstring.
    """
    environ = os.environ if environ is None else environ
    cores = cores_available() if cores is None else cores
    sharing = max(1, sharing)
    share = max(1, cores // sharing)
    inter = 1
    setting = environ.get(THREADS_ENV, "").strip()
    if setting:
        intra_text, _, inter_text = setting.partition(",")
        inter = _positive(inter_text.strip(), THREADS_ENV) if inter_text.strip() else 1
    if requested is not None:
        intra, reason = _positive(str(requested), "--threads"), "--threads"
    elif setting:
        intra, reason = _positive(intra_text.strip(), THREADS_ENV), THREADS_ENV
    elif environ.get("OMP_NUM_THREADS", "").strip():
        intra, reason = _positive(environ["OMP_NUM_THREADS"].strip(), "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    elif d_model is None:
        intra, reason = 1, "prediction"
    else:
        by_width = max(1, d_model // WIDTH_PER_THREAD)
        intra = min(share, by_width)
        reason = (f"d_model {d_model}: up to {by_width} thread(s); {cores} core(s) shared by {sharing} "
                  f"process(es): {share} each")
    return ThreadChoice(intra=intra, inter=inter, cores=cores, sharing=sharing, reason=reason)


def spin_off(environ: MutableMapping[str, str] | None = None) -> None:
    """Ask OpenMP threads to sleep rather than spin between parallel regions (unless the environment
    already says otherwise). Effective only before torch is first imported in this process."""
    environ = os.environ if environ is None else environ
    for name, value in SPIN_OFF_ENV.items():
        environ.setdefault(name, value)


_applied: ThreadChoice | None = None


def threads_apply(choice: ThreadChoice) -> ThreadChoice:
    """Give torch `choice`'s thread counts; returns what torch now uses (see `threads_describe`).

    The inter-op count can be set only once per process, before any inter-op work: a worker process
    that already ran a job keeps the count it set then (the returned choice says which).
    """
    global _applied
    import torch

    torch.set_num_threads(choice.intra)
    if torch.get_num_interop_threads() != choice.inter:
        try:
            torch.set_num_interop_threads(choice.inter)
        except RuntimeError:  # already set or already used in this process
            pass
    _applied = ThreadChoice(intra=torch.get_num_threads(), inter=torch.get_num_interop_threads(),
                            cores=choice.cores, sharing=choice.sharing, reason=choice.reason)
    return _applied


def threads_describe() -> dict[str, Any]:
    """What torch uses in this process, for a run's recorded environment: intra-op and inter-op
    threads, the cores it may use, the OpenMP wait policy, and why (when `threads_apply` chose)."""
    import torch

    described: dict[str, Any] = {"threads": torch.get_num_threads(),
                                 "interop_threads": torch.get_num_interop_threads(),
                                 "cores": cores_available(),
                                 "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if _applied is not None:
        described["threads_reason"] = _applied.reason
        described["sharing"] = _applied.sharing
    return described
