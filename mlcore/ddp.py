"""The distributed recipe: one run of `mlcore.recipe.recipe_run` as several rank processes.

A launcher (the worker's `workers.runner.job_run_distributed`, or any script) fills a work folder
(the data, the checkpoint to resume from, `launch.json` with the recipe config: `launch_write`) and
starts one process per GPU with the environment torchrun gives (WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT, and PARENT_PID_ENV). Each rank calls `rank_run`:

- every rank trains under DDP (mlcore.trainer, mlcore.distributed): NCCL on `cuda:LOCAL_RANK`, or
  gloo on the CPU;
- after training every rank leaves the process group (`recipe_run` does); rank 0 alone goes on to
  the test pass, explanations, model directory, the optimization profile (a fine-tune runs on its
  device alone) and writes the output directory with its manifest.json (mlcore.manifest): the
  launcher stores what that manifest lists;
- ranks > 0 write nothing of the run (their own scratch folder at most) and return after training.

A rank that raises writes `rank<R>.error.json` (`rank_error_write`; read back by `rank_error_read`)
and exits 1. `die_with_parent` ends a rank as soon as the process that started it is gone.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from mlcore.recipe import RecipeConfig, RecipeResult, recipe_run
from mlcore.trainer import Callback

log = logging.getLogger(__name__)

LAUNCH_FILE = "launch.json"
# The pid of the process that started the ranks: a rank whose parent is no longer it exits.
PARENT_PID_ENV = "LABFORMER_DDP_PARENT_PID"
_PATH_FIELDS = ("data", "out", "test_data")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def launch_write(work: Path, *, config: RecipeConfig, resume_from: Path | None, **extra: Any) -> Path:
    """Write what every rank needs to WORK/launch.json (paths as strings; `extra`: the launcher's own
    JSON values, e.g. the job id, given back by `launch_read`)."""
    recipe = {k: (str(v) if k in _PATH_FIELDS and v is not None else v) for k, v in asdict(config).items()}
    spec = {**extra, "recipe": recipe, "resume_from": str(resume_from) if resume_from else None}
    path = work / LAUNCH_FILE
    path.write_text(json.dumps(spec, indent=1))
    return path


def launch_read(work: Path) -> tuple[RecipeConfig, Path | None, dict[str, Any]]:
    """(recipe config, checkpoint to resume from, the launcher's extra values) as `launch_write` stored them."""
    spec = json.loads((work / LAUNCH_FILE).read_text())
    recipe = {k: (Path(v) if k in _PATH_FIELDS and v is not None else v) for k, v in spec.pop("recipe").items()}
    resume_from = Path(spec["resume_from"]) if spec.pop("resume_from") else None
    return RecipeConfig(**recipe), resume_from, spec


def rank_error_write(work: Path, rank: int, exc: BaseException) -> None:
    """Write WORK/rank<R>.error.json ({"message", "traceback"}) for the launcher's failure message."""
    error = {"message": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    (work / f"rank{rank}.error.json").write_text(json.dumps(error))


def rank_error_read(work: Path, rank: int) -> dict[str, str] | None:
    """What rank `rank` wrote before exiting on an exception ({"message", "traceback"}), if anything."""
    try:
        return json.loads((work / f"rank{rank}.error.json").read_text())
    except (OSError, ValueError):
        return None


def die_with_parent() -> None:
    """End this process as soon as the process that started it (PARENT_PID_ENV) is gone."""
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


def rank_config(config: RecipeConfig, work: Path, rank: int) -> RecipeConfig:
    """The config rank `rank` runs: rank 0 the launcher's; any other a training-only one writing into
    its own scratch folder (it returns after training, so no explanations and no profile)."""
    if rank == 0:
        return config
    return replace(config, out=work / f"rank{rank}" / "out", profile=None, explain_samples=0)


def rank_run(work: Path, config: RecipeConfig, resume_from: Path | None, *, rank: int,
             callbacks: Sequence[Callback] = (), checkpoint_dir: Path | None = None) -> RecipeResult:
    """This rank's part of the distributed run (see the module's doc). `callbacks` and
    `checkpoint_dir` matter on rank 0 only (the trainer calls callbacks and checkpoints there)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    log.info("distributed training: rank %d of %d on %s", rank, world_size, config.device)
    if rank == 0:
        return recipe_run(config, callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume_from=resume_from)
    run = recipe_run(rank_config(config, work, rank), resume_from=resume_from)
    log.info("rank %d: %d epochs, %s", rank, len(run.train_result.history), run.train_result.stopped_reason)
    return run
