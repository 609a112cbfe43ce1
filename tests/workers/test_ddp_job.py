"""Multi-GPU jobs through real `celery worker` processes, Redis and PostgreSQL, rehearsed on the CPU.

A worker started with LABFORMER_DDP_DEVICE=cpu runs a job's ranks with gloo on the CPU instead of
NCCL on GPUs (workers/ddp.py); everything else is the production path: the job is routed to the
`gpu` queue, passed on to `gpu-x2` by a worker owning one GPU, run as two rank processes by a worker
owning two, and stopped, failed or cancelled as one. The last test runs `recipe_run` in two gloo
processes without a worker: only rank 0 goes on past training.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from django.core.files.base import ContentFile

from portal.config.celery import HANDLER_RUN_JOB, QUEUE_GPU, app, job_queue
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results.models import Artifact, MetricPoint, Result
from tests.mlcore.test_ddp import _free_port
from tests.workers.conftest import planted_motif_csv, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
S = Job.Status
DDP_WORKER = {"LABFORMER_DDP_DEVICE": "cpu", "LABFORMER_WORKER_GPUS": "2"}


def _submit(dataset, time_limit_s: int | None = None, **hyper) -> Job:  # noqa: ANN001
    # Submission refuses a GPU job no registered worker could run: this lab's two-GPU rig (the
    # rehearsal worker below, gloo ranks on the CPU) has run jobs before.
    job_services.worker_seen_record(hostname="rig@gpu-x2", queues=["gpu"], gpus=2)
    return job_services.job_submit(
        user=dataset.owner, dataset=dataset, task_key="dna-classification", preset="tiny", device=Job.Device.GPU,
        gpu_count=2, hyperparameters={"epochs": 2, "patience": 0, **hyper}, time_limit_s=time_limit_s,
    )


def _status(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def _ranks(var_dir: Path) -> dict[int, int]:
    """{rank: pid} of the live `workers.ddp` processes whose work folder is under `var_dir`."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"workers.ddp" not in cmdline or not any(str(var_dir).encode() in arg for arg in cmdline):
                continue
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # dead, waiting to be reaped
            env = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
            found[int(env[b"RANK"])] = int(proc.name)
        except (OSError, KeyError, ValueError, IndexError):
            continue  # it exited while we looked
    return found


def _training(job: Job) -> bool:
    return MetricPoint.objects.filter(job=job, split="train", name="loss").exists()


def test_a_two_gpu_job_is_passed_on_and_runs_as_two_ranks(start_worker, dna_dataset, tmp_path) -> None:  # noqa: ANN001
    small = start_worker()  # LABFORMER_WORKER_GPUS defaults to 1
    job = _submit(dna_dataset(n=160), batch_size=16)  # routed to gpu-x2 at submission: the small worker never sees it
    # A message that reaches `gpu` anyway (sent before this routing existed) is passed on, unstarted.
    app.send_task(HANDLER_RUN_JOB, args=[job.pk], queue=QUEUE_GPU)
    wait_for(lambda: "passed on to queue gpu-x2" in small.output(), 60, "the one-GPU worker to pass the job on", small)
    assert _status(job) == S.QUEUED and small.output().count("passed on to queue gpu-x2") == 1
    big = start_worker(**DDP_WORKER)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 240, "the two-rank job to finish", big)
    job.refresh_from_db()
    assert job.status == S.SUCCEEDED, job.error_message + job.error_traceback
    assert job.worker_hostname.startswith(big.name) and job.attempts == 1 and job.progress == 1.0
    kinds = set(Artifact.objects.filter(job=job).values_list("kind", flat=True))
    assert {"checkpoint", "model", "predictions", "attention", "embeddings", "report", "log"} <= kinds
    assert "roc_auc" in Result.objects.get(job=job).baseline_metrics
    assert MetricPoint.objects.filter(job=job, split="val").exists()

    with Artifact.objects.get(job=job, kind="report", file__endswith="metrics.json").file.open("rb") as fh:
        metrics = json.load(fh)
    assert metrics["world_size"] == 2
    # Each rank took half of every epoch's batches: rank 0, which reports, stepped half as often as one process.
    batches = math.ceil(metrics["n_train"] / metrics["hyperparameters"]["batch_size"])
    steps = list(MetricPoint.objects.filter(job=job, split="train", name="loss").order_by("step")
                 .values_list("step", flat=True))
    assert steps == list(range(1, 2 * math.ceil(batches / 2) + 1)) and batches >= 6
    # Both ranks took part in every epoch's gather: the checkpoint holds two RNG states.
    with Artifact.objects.get(job=job, kind="checkpoint").file.open("rb") as fh:
        checkpoint = torch.load(fh, map_location="cpu", weights_only=False)
    assert checkpoint["world_size"] == 2 and len(checkpoint["rng"]) == 2
    with Artifact.objects.get(job=job, kind="log").file.open("rb") as fh:
        log_text = fh.read().decode()
    assert "2 ranks on cpu (gloo)" in log_text and "rank 0 of 2" in log_text and "epoch 2/2" in log_text, log_text
    wait_for(lambda: not _ranks(tmp_path), 10, "the ranks to exit", big)


def test_jobs_are_queued_by_device_and_gpu_count() -> None:
    assert job_queue("cpu") == "cpu" and job_queue("gpu", 1) == "gpu" and job_queue("gpu", 4) == "gpu-x4"


def test_a_failing_rank_fails_the_job_with_its_message(start_worker, dna_dataset, tmp_path) -> None:  # noqa: ANN001
    worker = start_worker(**DDP_WORKER)
    # Every rank raises while reading a file without its label column.
    bad = dna_dataset()
    bad.original_file.save("broken.csv", ContentFile(b"sequence,other\nACGT,1\nTTTT,0\n"), save=True)
    job = _submit(bad)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 120, "the job to fail", worker)
    job.refresh_from_db()
    assert job.status == S.FAILED
    # Both ranks fail alike; the first one seen failing is named.
    assert re.match(r"distributed training failed: rank [01] exited with code 1: DataError", job.error_message)
    assert "label" in job.error_message and "Traceback" in job.error_traceback and "--- rank 1" in job.error_traceback

    # A rank killed mid-training (out of memory, a lost GPU): the others are stopped, the job fails.
    job = _submit(dna_dataset(n=800, length=100), epochs=50)
    wait_for(lambda: _training(job) and 1 in _ranks(tmp_path), 120, "training on both ranks", worker)
    os.kill(_ranks(tmp_path)[1], signal.SIGKILL)
    wait_for(lambda: _status(job) == S.FAILED, 30, "the job to fail", worker)
    job.refresh_from_db()
    assert job.error_message == "distributed training failed: rank 1 was killed by signal SIGKILL", job.error_message
    assert not _ranks(tmp_path) and worker.alive
    assert Artifact.objects.filter(job=job, kind="log").count() == 1


def test_cancel_and_the_time_limit_stop_every_rank(start_worker, dna_dataset, tmp_path) -> None:  # noqa: ANN001
    worker = start_worker(**DDP_WORKER)
    job = _submit(dna_dataset(n=800, length=100), epochs=50)
    wait_for(lambda: _training(job) and len(_ranks(tmp_path)) == 2, 120, "training on both ranks", worker)
    asked = time.time()
    job_services.job_cancel(job_id=job.pk, user=job.owner)
    wait_for(lambda: _status(job) == S.CANCELLED, 10, "cancelled within 10 s", worker)
    assert time.time() - asked < 10
    wait_for(lambda: not _ranks(tmp_path), 10, "the ranks to exit", worker)

    job = _submit(dna_dataset(n=800, length=100), epochs=50, time_limit_s=20)
    wait_for(lambda: len(_ranks(tmp_path)) == 2, 60, "both ranks to start", worker)
    wait_for(lambda: _status(job) in (S.SUCCEEDED, S.FAILED), 90, "the job to hit its limit", worker)
    job.refresh_from_db()
    assert job.status == S.FAILED and "time limit of 20 s" in job.error_message, job.error_message
    assert not _ranks(tmp_path) and worker.alive


def test_a_worker_killed_with_sigkill_leaves_no_rank(start_worker, dna_dataset, tmp_path) -> None:  # noqa: ANN001
    worker = start_worker(**DDP_WORKER)
    job = _submit(dna_dataset(n=800, length=100), epochs=50)
    wait_for(lambda: _training(job) and len(_ranks(tmp_path)) == 2, 120, "training on both ranks", worker)
    worker.kill()  # the worker's process group: the ranks live in their own sessions
    wait_for(lambda: not _ranks(tmp_path), 10, "the orphaned ranks to die", worker)


# One rank of `recipe_run` under gloo, as workers/ddp.py runs it; prints what it produced.
_RANK_SCRIPT = """
import json, sys
from pathlib import Path
from mlcore.recipe import RecipeConfig, recipe_run
run = recipe_run(RecipeConfig(task="dna-classification", data=Path(sys.argv[1]), out=Path(sys.argv[2]), device="cpu",
                              hyperparameters={"epochs": 1, "batch_size": 16}, explain_samples=2, profile="slim"))
print(json.dumps({"test": run.metrics["test"], "explain": run.explain is not None, "model": run.prepared is not None,
                  "profile": run.compression is not None}))
"""


@pytest.mark.django_db(transaction=False)
def test_under_ddp_only_rank_0_tests_explains_and_saves(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "motif.csv"
    data.write_bytes(planted_motif_csv(160))
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "OMP_NUM_THREADS": "1"}
    ranks = [subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT, str(data), str(tmp_path / f"out{r}")],
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, text=True)
             for r in range(2)]
    try:
        outputs = [json.loads(proc.communicate(timeout=300)[0].strip().splitlines()[-1]) for proc in ranks]
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [proc.returncode for proc in ranks] == [0, 0]
    assert outputs[0]["test"] and outputs[0]["explain"] and outputs[0]["model"]
    assert (tmp_path / "out0" / "metrics.json").exists() and (tmp_path / "out0" / "model").is_dir()
    # slim fine-tunes: after DDP training rank 0 left the process group and did it alone (no hang)
    assert outputs[0]["profile"] and (tmp_path / "out0" / "report.json").exists()
    # Rank 1 trained (DDP needs it for every step) and stopped there: nothing evaluated, nothing written.
    assert outputs[1] == {"test": {}, "explain": False, "model": False, "profile": False}
    assert not (tmp_path / "out1").exists()
