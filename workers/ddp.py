"""The rank processes of a multi-GPU job: `python -m workers.ddp WORK_DIR`, one per GPU.

The worker (`workers.runner.job_run_distributed`) fills WORK_DIR (the dataset file, the checkpoint to
resume from, `launch.json` with the recipe config: `launch_write`) and starts every rank with the
environment torchrun would give it (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
`mlcore.trainer` then trains under DDP (`mlcore.distributed`): NCCL with each rank on `cuda:LOCAL_RANK`
of the GPUs in CUDA_VISIBLE_DEVICES, or gloo on the CPU when the worker runs with the rehearsal
switch LABFORMER_DDP_DEVICE=cpu.

- Rank 0 sets up Django and runs the worker's own job path (`workers.runner.job_execute`): heartbeat,
  metric points and cancel flag, a checkpoint artifact every epoch, then the test evaluation,
  explanations, model and result, and it ends the job. After training it leaves the process group,
  so an optimization profile (some fine-tune) runs on rank 0's device alone.
- Ranks > 0 only train: no Django, no database, their own scratch output folder; `recipe_run`
  returns right after training on them.
- A rank that raises writes `rank<R>.error.json` (message, traceback) for the worker's failure message
  and exits 1. Every rank dies with the worker process that started it (PR_SET_PDEATHSIG on Linux, a
  watcher thread elsewhere), so a worker killed with SIGKILL leaves no rank behind.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mlcore import distributed as dist_utils
from mlcore.recipe import RecipeConfig, RecipeResult, recipe_profile, recipe_run
from mlcore.trainer import STOP_CANCELLED, Callback

log = logging.getLogger("workers.ddp")  # not __name__: run with -m, that is "__main__"

LAUNCH_FILE = "launch.json"
# The pid of the worker process that started the ranks: a rank whose parent is no longer it exits.
PARENT_PID_ENV = "LABFORMER_DDP_PARENT_PID"
_PATH_FIELDS = ("data", "out", "test_data")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def launch_write(work: Path, *, job_id: int, config: RecipeConfig, resume_from: Path | None) -> Path:
    """Write what every rank needs to WORK/launch.json (paths as strings)."""
    recipe = {k: (str(v) if k in _PATH_FIELDS and v is not None else v) for k, v in asdict(config).items()}
    spec = {"job_id": job_id, "recipe": recipe, "resume_from": str(resume_from) if resume_from else None}
    path = work / LAUNCH_FILE
    path.write_text(json.dumps(spec, indent=1))
    return path


def launch_read(work: Path) -> tuple[int, RecipeConfig, Path | None]:
    """(job id, recipe config, checkpoint to resume from) as `launch_write` stored them."""
    spec = json.loads((work / LAUNCH_FILE).read_text())
    recipe = {k: (Path(v) if k in _PATH_FIELDS and v is not None else v) for k, v in spec["recipe"].items()}
    resume_from = Path(spec["resume_from"]) if spec["resume_from"] else None
    return int(spec["job_id"]), RecipeConfig(**recipe), resume_from


def rank_error_read(work: Path, rank: int) -> dict[str, str] | None:
    """What rank `rank` wrote before exiting on an exception ({"message", "traceback"}), if anything."""
    try:
        return json.loads((work / f"rank{rank}.error.json").read_text())
    except (OSError, ValueError):
        return None


def _die_with_parent() -> None:
    """End this process as soon as the worker process that started it is gone."""
    parent = int(os.environ.get(PARENT_PID_ENV, "0"))
    if sys.platform.startswith("linux"):
        # The kernel sends SIGKILL when the parent exits, even if it was killed with SIGKILL itself.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    elif parent:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _recipe_rank0(config: RecipeConfig, *, callbacks: list[Callback], checkpoint_dir: Path,
                  resume_from: Path | None) -> RecipeResult:
    """`recipe_run` on rank 0, then the optimization profile on this rank alone.

    Once the other ranks have returned, a profile that fine-tunes (pruned, slim, distilled, ...) cannot
    train under DDP any more: rank 0 leaves the process group first, and the trainer then runs here alone.
    """
    world_size = int(os.environ["WORLD_SIZE"])
    log.info("distributed training: rank 0 of %d on %s", world_size, config.device)
    run = recipe_run(replace(config, profile=None), callbacks=callbacks, checkpoint_dir=checkpoint_dir,
                     resume_from=resume_from)
    run.metrics["world_size"] = world_size
    dist_utils.cleanup()
    os.environ["WORLD_SIZE"] = "1"  # mlcore.distributed.setup: single process from here on
    if config.profile and run.prepared is not None:
        from mlcore.compress.base import CompressionCancelled

        run.metrics["profile"] = config.profile
        log.info("applying the %s profile on rank 0 alone", config.profile)
        try:
            run.compression, run.optimized_dir = recipe_profile(config, run, callbacks=callbacks)
        except CompressionCancelled:
            run.metrics["stopped_reason"] = STOP_CANCELLED
    return run


def _rank0(work: Path, job_id: int, config: RecipeConfig, resume_from: Path | None) -> None:
    import django

    django.setup()
    from django.db import connections

    from portal.jobs.models import Job
    from workers.runner import job_logging, job_execute

    try:
        job = Job.objects.select_related("dataset").get(pk=job_id)
        with job_logging(work / "job.log", job=job) as stream:
            job_execute(job=job, config=config, resume_from=resume_from, work=work, log_path=stream.path,
                        recipe=_recipe_rank0, log_stream=stream)
    finally:
        connections.close_all()  # the process ends in dist_utils.exit_rank, without teardown


def _train_only(work: Path, rank: int, config: RecipeConfig, resume_from: Path | None) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s")
    config = replace(config, out=work / f"rank{rank}" / "out", profile=None, explain_samples=0)
    run = recipe_run(config, resume_from=resume_from)
    log.info("rank %d: %d epochs, %s", rank, len(run.train_result.history), run.train_result.stopped_reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.ddp", description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path, help="the job's work folder, prepared by the worker")
    work = parser.parse_args(argv).work
    _die_with_parent()
    rank = int(os.environ["RANK"])
    try:
        job_id, config, resume_from = launch_read(work)
        if rank == 0:
            _rank0(work, job_id, config, resume_from)
        else:
            _train_only(work, rank, config, resume_from)
    except Exception as exc:
        error: dict[str, Any] = {"message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        (work / f"rank{rank}.error.json").write_text(json.dumps(error))
        traceback.print_exc()
        return 1
    finally:
        dist_utils.cleanup()
    return 0


if __name__ == "__main__":
    dist_utils.exit_rank(main())  # no interpreter teardown: see mlcore.distributed.exit_rank
