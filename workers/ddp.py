"""The rank processes of a multi-GPU job: `python -m workers.ddp WORK_DIR`, one per GPU.

The worker (`workers.runner.job_run_distributed`) fills WORK_DIR (the dataset file, the checkpoint to
resume from, `launch.json`: `mlcore.ddp.launch_write`) and starts every rank with the environment
torchrun would give it (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Each rank runs its
part of the distributed recipe, `mlcore.ddp.rank_run`: NCCL with each rank on `cuda:LOCAL_RANK` of the
GPUs in CUDA_VISIBLE_DEVICES, or gloo on the CPU when the worker runs with the rehearsal switch
LABFORMER_DDP_DEVICE=cpu.

- Rank 0 sets up Django and trains with the worker's reporter (`workers.runner.job_train`):
  heartbeat, metric points and cancel flag, a checkpoint artifact every epoch. The recipe then writes
  the test evaluation, explanations, model, profile outputs and their manifest.json into the work
  folder; the worker stores what the manifest lists and ends the job once the ranks have exited.
- Ranks > 0 only train: no Django, no database, their own scratch output folder.
- A rank that raises writes `rank<R>.error.json` (message, traceback) for the worker's failure message
  and exits 1. Every rank dies with the worker process that started it (`mlcore.ddp.die_with_parent`),
  so a worker killed with SIGKILL leaves no rank behind.

This module imports the runner (for the reporter); the runner starts it by module name and never
imports it (an import-linter contract in .importlinter).
"""

from __future__ import annotations

import argparse
import logging
import os
import traceback
from pathlib import Path
from typing import Any

from mlcore import distributed as dist_utils
from mlcore.ddp import die_with_parent, launch_read, rank_error_write, rank_run
from mlcore.recipe import RecipeConfig, RecipeResult

log = logging.getLogger("workers.ddp")  # not __name__: run with -m, that is "__main__"


def _rank0(work: Path, job_id: int, config: RecipeConfig, resume_from: Path | None) -> None:
    import django

    django.setup()
    from django.db import connections

    from portal.jobs.models import Job
    from workers.runner import JobCancelled, job_logging, job_train

    def recipe(config: RecipeConfig, **kwargs: Any) -> RecipeResult:
        return rank_run(work, config, kwargs.pop("resume_from"), rank=0, **kwargs)

    try:
        job = Job.objects.select_related("dataset").get(pk=job_id)
        with job_logging(work / "job.log", job=job) as stream:
            try:
                job_train(job=job, config=config, resume_from=resume_from, work=work, recipe=recipe,
                          log_stream=stream)
            except JobCancelled:
                log.info("job %s: cancelled; rank 0 stops", job_id)  # the worker ends the job
            except BaseException:
                log.exception("job %s attempt %s failed on rank 0", job.pk, job.attempts)
                raise
    finally:
        connections.close_all()  # the process ends in dist_utils.exit_rank, without teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.ddp", description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path, help="the job's work folder, prepared by the worker")
    work = parser.parse_args(argv).work
    die_with_parent()
    rank = int(os.environ["RANK"])
    try:
        config, resume_from, extra = launch_read(work)
        if rank == 0:
            _rank0(work, int(extra["job_id"]), config, resume_from)
        else:
            logging.basicConfig(level=logging.INFO,
                                format=f"%(asctime)s rank {rank} %(levelname)s %(name)s: %(message)s")
            rank_run(work, config, resume_from, rank=rank)
    except Exception as exc:
        rank_error_write(work, rank, exc)
        traceback.print_exc()
        return 1
    finally:
        dist_utils.cleanup()
    return 0


if __name__ == "__main__":
    dist_utils.exit_rank(main())  # no interpreter teardown: see mlcore.distributed.exit_rank
