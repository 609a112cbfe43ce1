"""One attempt at one job: the bridge between the job row and the mlcore recipe.

`run_job` (workers/handlers.py) moves the job to running and hands it here. The runner
- copies the dataset file from storage to a local work folder (storage may be S3),
- finds the job's last checkpoint artifact, if an earlier attempt left one, to resume from it,
- runs `mlcore.recipe.recipe_run` with a callback that buffers metric points and progress, and
  records the recipe's phase (training, evaluating, explaining, optimizing) as it enters each,
- flushes them and the new lines of the attempt's log (workers/joblog.py) from a heartbeat thread
  every few seconds (batched INSERTs, and the heartbeat keeps beating through long validation or
  test passes), which also reads the cancel flag,
- stores a checkpoint artifact every epoch, and at the end exactly what the run's manifest.json
  (mlcore.manifest) lists, each role as its artifact kind (`ROLE_KINDS`), with the manifest's
  metadata, then the result and the log,
- and ends the job through the state machine: succeeded, cancelled, or failed with the traceback.

Every database write is retried through a dropped connection (workers/db_retry.py) and carries the
attempt number: once the job's lease went to a newer attempt (this worker was paused past the
heartbeat timeout), the writes are refused with `StaleAttempt`, the heartbeat thread notices it and
the next training step raises it, and this attempt stops without storing or ending anything.

A job asking for several GPUs is run by `job_run_distributed` instead: the same inputs, then one
process per GPU under torch.distributed (`python -m workers.ddp`, the distributed recipe
`mlcore.ddp`), rank 0 reporting as above; once the ranks exited, this process stores what the
manifest lists and ends the job. The runner never imports workers.ddp (.importlinter).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from mlcore import catalog, ddp
from mlcore.columns import ColumnMapping
from mlcore.manifest import MANIFEST_NAME, manifest_units
from mlcore.recipe import RecipeConfig, RecipeResult, recipe_run
from mlcore.threads import ThreadChoice, cores_available, preset_width, threads_apply, threads_choose
from mlcore.trainer import Callback, TrainState
from portal.jobs import services as job_services
from portal.jobs.models import Job
from portal.results import services as result_services
from portal.results.models import Artifact
from portal.results.services import Point
from workers.db_retry import db_retry
from workers.joblog import JobLogStream
from workers.leased import LeaseReporter
from workers.workdirs import work_dirs_sweep

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """The job was cancelled while it ran."""


# Test records whose full attention maps (layers, heads, L, L) are stored for the attention explorer:
# every test record of a small test set (each embedding point then opens its map), a class-balanced
# sample of a large one, and never more than mlcore.outputs.ATTENTION_MAX_BYTES.
EXPLAIN_SAMPLES = 256

# The artifact kind each role of the recipe's manifest (mlcore.manifest) is stored as. Side files
# (role "explanations") travel as their file's metadata; checkpoints are stored while training.
ROLE_KINDS = {
    "metrics": Artifact.Kind.REPORT,
    "report": Artifact.Kind.REPORT,
    "model": Artifact.Kind.MODEL,
    "optimized_model": Artifact.Kind.MODEL,
    "attention": Artifact.Kind.ATTENTION,
    "embeddings": Artifact.Kind.EMBEDDINGS,
    "projection": Artifact.Kind.EMBEDDINGS,
    "evaluation": Artifact.Kind.PREDICTIONS,
    "predictions": Artifact.Kind.PREDICTIONS,
    "checkpoint": Artifact.Kind.CHECKPOINT,
    "log": Artifact.Kind.LOG,
}


class DatabaseReporter(LeaseReporter, Callback):
    """The job's heartbeat reporter (``workers.leased.LeaseReporter``, as for predictions), which also
    collects progress and metric points from the training loop and writes them on every beat.

    The training loop only appends to in-memory lists (cheap, no I/O between steps); the heartbeat
    thread swaps the lists out under a lock and writes them in one statement each, beats (fenced by
    the attempt; it reads the cancel flag too) and sends the new lines of the attempt's log.
    """

    def __init__(self, *, job_id: int, attempt: int, interval: float, log_stream: JobLogStream | None = None) -> None:
        super().__init__(lease=job_services.LEASE, pk=job_id, attempt=attempt, interval=interval)
        self.job_id = job_id
        self.log_stream = log_stream
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._progress: dict[str, Any] = {}
        self._checkpoints: list[Path] = []

    # --- the training loop's side ------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        self._set_progress(state)

    def on_step_end(self, state: TrainState) -> None:
        self.check()  # in the training loop: a stale attempt stops at its next step
        with self._lock:
            self._points.append(Point("train", "loss", state.step, state.epoch, state.loss, self.attempt))
            self._points.append(Point("train", "lr", state.step, state.epoch, state.lr, self.attempt))
        self._set_progress(state)

    def on_epoch_end(self, state: TrainState, metrics: dict[str, float]) -> None:
        # One row per epoch: val_<metric> become ("val", metric) points; the epoch's mean training
        # loss is ("train", "epoch_loss") so it never collides with the per-step ("train", "loss").
        points = []
        for key, value in metrics.items():
            if key in ("epoch", "time", "lr") or not isinstance(value, (int, float)):
                continue
            if key.startswith("val_"):
                split, name = "val", key[4:]
            elif key == "train_loss":
                split, name = "train", "epoch_loss"
            else:
                split, name = "train", key
            points.append(Point(split, name, state.step, state.epoch, float(value), self.attempt))
        self.check()
        with self._lock:
            self._points.extend(points)
        self._set_progress(state)

    def on_checkpoint(self, path: Path) -> None:
        # Copy now: the trainer overwrites the same file next epoch. Storing happens here, in the
        # training thread, so the checkpoint is safe before the next epoch begins.
        self.flush()
        db_retry(
            result_services.artifact_create, what="storing the checkpoint",
            job_id=self.job_id, kind=Artifact.Kind.CHECKPOINT, path=path, name="last.pt", attempt=self.attempt,
            metadata={"epoch": self._progress.get("epoch"), "step": self._progress.get("step")}, replace=True,
        )

    def on_phase(self, name: str, index: int, count: int) -> None:
        # Written at once (a handful per run): a short phase would fall between two heartbeats.
        db_retry(job_services.job_phase_set, what="the phase", job_id=self.job_id, phase=name, index=index,
                 count=count, attempt=self.attempt)

    def _set_progress(self, state: TrainState) -> None:
        with self._lock:
            self._progress = {"progress": float(state.fraction), "epoch": int(state.epoch), "step": int(state.step)}

    # --- the heartbeat thread's side ---------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        self.flush()

    def beat(self) -> bool:
        """Write the buffered points, beat and send the log; True when a cancel was asked. Points whose
        write fails stay buffered for the next beat (none is lost; the upsert stores a point written
        twice once)."""
        with self._lock:
            points, self._points = self._points, []
            progress = dict(self._progress)
        try:
            if points:
                db_retry(result_services.metric_points_record, what="the metric flush",
                         job_id=self.job_id, points=points, attempt=self.attempt)
            cancel = db_retry(job_services.job_heartbeat, what="the heartbeat", job_id=self.job_id,
                              attempt=self.attempt, **progress)
            if self.log_stream is not None:
                db_retry(self.log_stream.send, what="the log")
        except job_services.StaleAttempt:
            raise
        except Exception:
            with self._lock:
                self._points[:0] = points
            raise
        return cancel


def _local_copy(field_file: Any, destination: Path) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with field_file.open("rb") as src, open(destination, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    return destination


def _zip_dir(directory: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(directory))
    return target


def _profile_options(job: Job) -> dict[str, Any]:
    """The job's profile options (typed at submission); a job submitted before options were stored
    has only its accuracy budget, in its config."""
    options = {k: v for k, v in (job.options or {}).items() if v is not None}
    profile = catalog.PROFILES.get(job.profile_key)
    if job.config.get("budget") is not None and profile is not None and profile.option("budget") is not None:
        options.setdefault("budget", job.config["budget"])
    return options


def _recipe_config(job: Job, data: Path, out: Path, *, canonical: bool) -> RecipeConfig:
    """The mlcore recipe's config from the job's frozen snapshot and the dataset's column mapping.

    The canonical Parquet copy is read with the mapping validation resolved against the file (the
    report's `columns`); the original file (a dataset validated before canonical copies existed) with
    the upload's own (the schema). A target column picked at submission replaces the mapping's.
    """
    cfg = job.config
    stored = job.dataset.validation_report.get("columns") if canonical else cfg.get("dataset", {}).get("schema")
    columns = ColumnMapping.from_dict(stored or {}).with_targets(cfg.get("target_cols"))
    return RecipeConfig(
        task=job.task_key,
        data=data,
        out=out,
        split=cfg.get("split", "random"),
        preset=cfg.get("preset", "tiny"),
        hyperparameters=dict(cfg.get("hyperparameters", {})),
        device="cuda" if job.device == Job.Device.GPU else "cpu",
        # The baseline is always trained; the job's profile (`baseline` too: the trained model itself)
        # is applied to it afterwards and reported side by side on the same test split (mlcore.compress).
        profile=job.profile_key,
        profile_options=_profile_options(job),
        explain_samples=EXPLAIN_SAMPLES,
        columns=columns,
    )


def outputs_store(job: Job, out: Path, work: Path, *, roles: set[str] | None = None) -> list[Artifact]:
    """Store what the run's manifest (OUT/manifest.json, mlcore.manifest) lists, with its roles'
    artifact kinds and the manifest's metadata: each file as it is, each bundle (a model directory) as
    one zip in `work`. `roles` limits it to those roles. Returns the stored artifacts, in the
    manifest's order."""
    stored = []
    for unit in manifest_units(out):
        if roles is not None and unit.role not in roles:
            continue
        meta = dict(unit.meta)
        if unit.is_bundle:
            path = _zip_dir(out / unit.path, work / f"{Path(unit.path).name}.zip")
            meta["format"] = "mlcore model directory (zip)"
        else:
            path = out / unit.path
        stored.append(_store(job, kind=ROLE_KINDS[unit.role], path=path, metadata=meta))
    return stored


def _outputs_record(job: Job, out: Path, work: Path, *, seconds: float) -> dict[str, Any]:
    """A finished run's outputs: its metrics as test points, every file of its manifest as an
    artifact. Returns the result's fields. Raises JobCancelled when the run stopped cancelled."""
    metrics = json.loads((out / "metrics.json").read_text())
    if metrics.get("stopped_reason") == "cancelled":
        raise JobCancelled()
    metrics["worker_seconds"] = round(seconds, 3)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    record_points = functools.partial(db_retry, result_services.metric_points_record, what="the test metrics",
                                      job_id=job.pk, attempt=job.attempts)
    record_points(points=[Point("test", k, 0, int(metrics.get("best_epoch") or 0), float(v), job.attempts)
                          for k, v in metrics["test"].items() if isinstance(v, (int, float))])
    outputs_store(job, out, work, roles=set(ROLE_KINDS) - {"checkpoint"})  # checkpoints: stored every epoch
    optimized_metrics, report = {}, {}
    if (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
    # `baseline`: the optimized model is the trained model itself; the report is all it adds.
    if report and not report.get("info", {}).get("unchanged"):
        optimized_metrics = report.get("optimized", {}).get("metrics", {})
        record_points(points=[Point("test_optimized", k, 0, 0, float(v), job.attempts)
                              for k, v in optimized_metrics.items() if isinstance(v, (int, float))])
    return {"baseline_metrics": metrics["test"], "optimized_metrics": optimized_metrics,
            "compression_report": report, "environment": metrics.get("environment"),
            "target_kind": metrics.get("target_kind")}  # the kind the run resolved


@contextlib.contextmanager
def job_logging(log_path: Path, *, job: Job | None = None) -> Iterator[JobLogStream]:
    """The mlcore and workers loggers also write to the job's log file while the block runs, and,
    given the `job`, to its attempt's log in the database (sent by the heartbeat and at the end)."""
    stream = JobLogStream(log_path, job_id=job.pk if job is not None else None,
                          attempt=job.attempts if job is not None else 0)
    stream.attach()
    try:
        yield stream
    finally:
        stream.close()


def _store(job: Job, **kwargs: Any) -> Artifact:
    """Store an artifact of this attempt (fenced by its lease, retried through a dropped connection)."""
    return db_retry(result_services.artifact_create, what=f"storing a {kwargs.get('kind')} artifact",
                    job_id=job.pk, attempt=job.attempts, **kwargs)


def _store_log(job: Job, log_path: Path) -> None:
    try:
        _store(job, kind=Artifact.Kind.LOG, path=log_path, name=f"attempt-{job.attempts}.log",
               metadata={"attempt": job.attempts})
    except Exception:  # the log is a convenience; never let it hide the real outcome
        log.exception("job %s: could not store the log", job.pk)


def _work_dir(job: Job) -> Path:
    work_root = Path(settings.LABFORMER_WORK_DIR)
    work_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"job-{job.pk}-a{job.attempts}-", dir=work_root))


def _inputs_fetch(job: Job, work: Path) -> tuple[RecipeConfig, Path | None]:
    """Copy the dataset file into `work`, fetch the last checkpoint if an earlier attempt left one.

    Returns the recipe config (reading the local copy, writing `work/out`) and the checkpoint to
    resume from (None: start from scratch).
    """
    dataset = job.dataset
    canonical = bool(dataset.canonical_file)
    source = dataset.canonical_file if canonical else dataset.original_file
    suffix = "".join(Path(source.name).suffixes[-2:]) or ".csv"
    data = _local_copy(source, work / f"data{suffix}")
    resume_from = None
    checkpoint = result_services.artifact_latest(job_id=job.pk, kind=Artifact.Kind.CHECKPOINT)
    if checkpoint is not None:
        resume_from = result_services.artifact_fetch(artifact=checkpoint, destination=work / "resume" / "last.pt")
        log.info("job %s attempt %s resumes from %s", job.pk, job.attempts, checkpoint.metadata)
    return _recipe_config(job, data, work / "out", canonical=canonical), resume_from


def job_train(*, job: Job, config: RecipeConfig, resume_from: Path | None, work: Path,
              recipe: Callable[..., RecipeResult] = recipe_run, log_stream: JobLogStream | None = None) -> RecipeResult:
    """Run the recipe for a running job whose inputs are in `work`, with the heartbeat reporter (metric
    points, progress, phase, checkpoints, cancel flag). Returns the run; raises `JobCancelled` when
    it was cancelled (also after the last step) and `StaleAttempt` when the lease went to a newer attempt.

    Runs in the worker for a job on one device, and in rank 0 of a multi-GPU job (workers/ddp.py).
    """
    reporter = DatabaseReporter(job_id=job.pk, attempt=job.attempts, interval=settings.LABFORMER_HEARTBEAT_INTERVAL,
                                log_stream=log_stream)
    try:
        reporter.start()
        result = recipe(config, callbacks=[reporter], checkpoint_dir=work / "checkpoints", resume_from=resume_from)
        reporter.stop()
        if reporter.stale is not None:
            raise reporter.stale
        # A cancel asked after the last step (seen by the final flush) is honoured: nothing more is stored.
        if reporter.should_stop() or "cancelled" in (result.train_result.stopped_reason,
                                                     result.metrics.get("stopped_reason")):
            raise JobCancelled()
        return result
    finally:
        if reporter._thread.is_alive():
            try:
                reporter.stop()
            except Exception as exc:  # noqa: BLE001 - the error on its way out is the one that matters
                log.warning("job %s: last flush failed: %s", job.pk, exc)


def job_execute(*, job: Job, config: RecipeConfig, resume_from: Path | None, work: Path, log_path: Path,
                recipe: Callable[..., RecipeResult] = recipe_run, log_stream: JobLogStream | None = None) -> str:
    """Train, record and end one attempt of a running job whose inputs are in `work`. Returns the final status.

    `job_train`, then what the run's manifest lists is stored (`_outputs_record`) and the result
    recorded. Stores the log `log_path` at the end, whatever happened, with the traceback of a failure
    in it; `log_stream` (job_logging's) is sent to the database on every beat.
    """
    try:
        started = time.perf_counter()
        job_train(job=job, config=config, resume_from=resume_from, work=work, recipe=recipe, log_stream=log_stream)
        result_fields = _outputs_record(job, Path(config.out), work, seconds=time.perf_counter() - started)
        status = Job.Status.SUCCEEDED
    except JobCancelled:
        status = Job.Status.CANCELLED
    except BaseException:
        # Into the attempt's own log too (the worker's log has it as well): a failed attempt's log
        # says why it failed.
        log.exception("job %s attempt %s failed", job.pk, job.attempts)
        raise
    finally:
        _store_log(job, log_path)
    if status == Job.Status.SUCCEEDED:
        try:
            return db_retry(_succeed, job, what="ending the job", **result_fields)
        except JobCancelled:
            status = Job.Status.CANCELLED
    db_retry(job_services.job_mark_cancelled, what="ending the job", job_id=job.pk, attempt=job.attempts)
    return status


# Pool processes of this worker that may train at once (its concurrency, -c); workers.handlers sets it when
# the worker starts. The jobs' torch threads share the worker's cores among them (mlcore.threads).
pool_processes = 1


def job_threads(job: Job) -> ThreadChoice:
    """Set this process's torch threads for `job` (mlcore.threads: model width, the cores this worker
    may use shared by its pool processes, LABFORMER_TORCH_THREADS overriding) and return the choice."""
    choice = threads_apply(threads_choose(d_model=preset_width(job.config.get("preset", "tiny")),
                                          sharing=pool_processes))
    log.info("job %s: %d torch thread(s), %d inter-op (%s)", job.pk, choice.intra, choice.inter, choice.reason)
    return choice


def _succeed(job: Job, **result_fields: Any) -> str:
    """Record the result and end the job succeeded, in one transaction.

    A cancel asked after the last training step is honoured (see ``job_services.job_succeed``): the
    result's fenced write locks the job row, so the cancel flag read next cannot change before the
    commit; when it is set the result is rolled back and ``JobCancelled`` raised. Artifacts stored so
    far stay with the cancelled job.
    """
    with transaction.atomic():
        result_services.result_record(job_id=job.pk, attempt=job.attempts, **result_fields)
        if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
            raise JobCancelled()
        return job_services.job_succeed(job_id=job.pk, attempt=job.attempts).status


def job_run(*, job: Job) -> str:
    """Run one attempt of a job that this worker has just moved to running. Returns the final status.

    A job asking for several GPUs runs as that many rank processes (`job_run_distributed`); any
    other job trains here, in the worker's process.
    """
    if job.device == Job.Device.GPU and job.gpu_count > 1:
        return job_run_distributed(job=job)
    work_dirs_sweep()  # earlier attempts' folders (killed, paused) and finished jobs' on this machine
    work = _work_dir(job)
    try:
        with job_logging(work / "job.log", job=job) as stream:
            try:
                job_threads(job)
                config, resume_from = db_retry(_inputs_fetch, job, work, what="fetching the inputs")
            except BaseException:
                log.exception("job %s attempt %s could not fetch its inputs", job.pk, job.attempts)
                _store_log(job, stream.path)
                raise
            return job_execute(job=job, config=config, resume_from=resume_from, work=work, log_path=stream.path,
                               log_stream=stream)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- multi-GPU jobs: one process per GPU under torch.distributed ---------------------------------

# Seconds the ranks get to end by themselves once the job was cancelled or ended elsewhere, and to
# exit after SIGTERM, before they are killed.
DDP_STOP_GRACE_S = 5.0
# Characters of each rank's output kept in the traceback of a failed distributed run.
DDP_OUTPUT_TAIL = 3000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks_start(work: Path, world_size: int) -> list[subprocess.Popen]:
    """Start `python -m workers.ddp WORK` once per rank with the torchrun environment.

    Each rank runs in its own session (process group), so a signal meant for the worker's group does
    not reach it half-way and the ranks can be stopped group by group; a rank dies with this process
    (PR_SET_PDEATHSIG, set by the rank itself: see workers/ddp.py).
    """
    root = str(Path(__file__).resolve().parents[1])
    base = {
        **os.environ,
        "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
        ddp.PARENT_PID_ENV: str(os.getpid()),
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
        "PYTHONUNBUFFERED": "1",
    }
    # As torchrun does: the ranks share the worker's cores instead of each taking all of them.
    base.setdefault("OMP_NUM_THREADS", str(max(1, cores_available() // world_size)))
    ranks = []
    for rank in range(world_size):
        with open(work / f"rank{rank}.log", "wb") as output:
            ranks.append(subprocess.Popen(
                [sys.executable, "-m", "workers.ddp", str(work)],
                env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank)},
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            ))
    return ranks


def _ranks_stop(ranks: list[subprocess.Popen]) -> None:
    """SIGTERM every rank's process group, then SIGKILL what is still there after the grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # Only ranks not yet reaped: the pid of one already waited for may belong to someone else now.
        alive = [proc for proc in ranks if proc.poll() is None]
        for proc in alive:
            try:
                os.killpg(proc.pid, sig)  # each rank leads its own group (start_new_session)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + DDP_STOP_GRACE_S
        for proc in alive:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


def _exit_words(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _first_failed(ranks: list[subprocess.Popen]) -> int | None:
    """The rank to blame among those that exited non-zero: one killed by a signal (the others then
    fail in their next collective), else the lowest."""
    down = [r for r, proc in enumerate(ranks) if proc.returncode not in (None, 0)]
    return min(down, key=lambda r: (ranks[r].returncode > 0, r)) if down else None


def _ranks_supervise(job: Job, ranks: list[subprocess.Popen]) -> int | None:
    """Wait for the ranks; stop them all when one fails, or when the job was cancelled or ended
    elsewhere and they have not ended by themselves after a grace period. Returns the failed rank."""
    stop_asked_at: float | None = None
    # One waiter thread per rank wakes the loop the moment a rank ends; otherwise the loop wakes once a
    # second to read the job row (cancel, or ended elsewhere).
    rank_ended = threading.Event()

    def waiter(proc: subprocess.Popen) -> None:
        proc.wait()
        rank_ended.set()

    for rank, proc in enumerate(ranks):
        threading.Thread(target=waiter, args=(proc,), name=f"job-{job.pk}-rank-{rank}-waiter", daemon=True).start()
    while True:
        rank_ended.clear()  # before looking: a rank ending after this point sets it again
        all_ended = all(proc.poll() is not None for proc in ranks)
        failed = _first_failed(ranks)  # after the poll: a rank seen ended has its return code set
        if all_ended:
            return failed
        if failed is not None:
            # The others would wait in their next collective until a timeout: stop them (torchrun does too).
            log.error("job %s: rank %d %s; stopping the other ranks", job.pk, failed,
                      _exit_words(ranks[failed].returncode))
            _ranks_stop(ranks)
            return failed
        now = time.monotonic()
        row = db_retry(Job.objects.filter(pk=job.pk).values_list("status", "cancel_requested", "attempts").first,
                       what="reading the job")
        if row is not None and row[2] != job.attempts:
            row = ("requeued", False)  # the lease went to a newer attempt: stop these ranks
        if row is None or row[0] != Job.Status.RUNNING or row[1]:
            stop_asked_at = stop_asked_at or now
            if now - stop_asked_at > DDP_STOP_GRACE_S:
                log.warning("job %s is %s; stopping its ranks", job.pk,
                            "cancelled" if row and row[1] else (row[0] if row else "gone"))
                _ranks_stop(ranks)
                return None
        rank_ended.wait(1.0)


def _rank_report(work: Path, rank: int, code: int | None) -> tuple[str, str]:
    """(one line saying what went wrong on `rank`, the tail of its output)."""
    error = ddp.rank_error_read(work, rank)
    line = f"rank {rank} {_exit_words(code) if code is not None else 'did not exit'}"
    if error:
        line += f": {error['message']}"
    try:
        tail = (work / f"rank{rank}.log").read_text(errors="replace")[-DDP_OUTPUT_TAIL:]
    except OSError:
        tail = ""
    return line, tail


def _job_row(job: Job) -> tuple[str | None, bool]:
    """(status, cancel_requested) of the job as the database has it now ((None, False): gone)."""
    return db_retry(Job.objects.filter(pk=job.pk).values_list("status", "cancel_requested").first,
                    what="reading the job") or (None, False)


def _stopped_cancelled(out: Path) -> bool:
    """Whether the run in `out` ended cancelled (its metrics.json says so)."""
    try:
        return json.loads((out / "metrics.json").read_text()).get("stopped_reason") == "cancelled"
    except (OSError, ValueError):
        return False


def job_run_distributed(*, job: Job) -> str:
    """Run a job asking for `gpu_count` GPUs as that many processes under torch.distributed (DDP).

    This process (the Celery pool process) copies the dataset file and the resume checkpoint into a
    work folder, writes the recipe config there (`mlcore.ddp.launch_write`), starts one rank per
    GPU (`python -m workers.ddp`, the distributed recipe `mlcore.ddp.rank_run`) and waits. Rank 0
    reports while it trains (`job_train`) and writes the run's outputs with their manifest; the other
    ranks only train. Once every rank exited cleanly this process stores what the manifest lists and
    ends the job, as `job_execute` does. If the ranks end otherwise (a rank crashed, NCCL failed), the
    job fails here with the first failed rank's error and the tail of every rank's output. The soft
    time limit (raised here while waiting) and a cancel the ranks do not act on stop every rank's
    process group.
    """
    world_size = job.gpu_count
    device = settings.LABFORMER_DDP_DEVICE
    if device not in ("cuda", "cpu"):
        raise ValueError(f"LABFORMER_DDP_DEVICE={device!r}: expected cuda, or cpu for a rehearsal")
    if device == "cuda":
        import torch

        visible = torch.cuda.device_count()
        if visible < world_size:
            raise RuntimeError(
                f"the job asks for {world_size} GPUs; this worker sees {visible} "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}, "
                f"LABFORMER_WORKER_GPUS={settings.LABFORMER_WORKER_GPUS})")
    work_dirs_sweep()
    work = _work_dir(job)
    ranks: list[subprocess.Popen] = []
    result_fields: dict[str, Any] | None = None
    try:
        with job_logging(work / "job.log", job=job) as stream:
            log_path = stream.path
            try:
                config, resume_from = _inputs_fetch(job, work)
                ddp.launch_write(work, job_id=job.pk, config=replace(config, device=device), resume_from=resume_from)
                log.info("job %s: %d ranks on %s (%s)%s", job.pk, world_size, device,
                         "nccl" if device == "cuda" else "gloo",
                         " - LABFORMER_DDP_DEVICE=cpu: a rehearsal, not GPU training" if device == "cpu" else "")
                started = time.perf_counter()
                ranks = _ranks_start(work, world_size)
                failed = _ranks_supervise(job, ranks)
                out = Path(config.out)
                finished = (failed is None and all(proc.returncode == 0 for proc in ranks)
                            and (out / MANIFEST_NAME).is_file())
                if finished and _job_row(job) == (Job.Status.RUNNING, False):
                    try:  # rank 0 wrote the run: store what its manifest lists
                        result_fields = _outputs_record(job, out, work, seconds=time.perf_counter() - started)
                    except JobCancelled:
                        pass  # the recipe stopped cancelled: the job is marked so below
            except BaseException:
                log.exception("job %s attempt %s failed", job.pk, job.attempts)
                raise
            finally:
                _ranks_stop(ranks)
                status, cancel = _job_row(job)
                if status == Job.Status.RUNNING:
                    _store_log(job, log_path)
        if status != Job.Status.RUNNING:  # ended elsewhere (or the job was requeued meanwhile)
            return status
        if result_fields is not None:
            try:
                return db_retry(_succeed, job, what="ending the job", **result_fields)
            except JobCancelled:
                cancel = True
        if cancel or (failed is None and all(proc.returncode == 0 for proc in ranks)
                      and _stopped_cancelled(Path(config.out))):
            db_retry(job_services.job_mark_cancelled, what="ending the job", job_id=job.pk, attempt=job.attempts)
            return Job.Status.CANCELLED
        reports = [_rank_report(work, r, proc.returncode) for r, proc in enumerate(ranks)]
        if failed is None:
            message = "the distributed run ended without finishing the job"
        else:
            message = f"distributed training failed: {reports[failed][0]}"
        details = "\n\n".join(f"--- {line}\n{tail}" for line, tail in reports)
        log.error("job %s: %s", job.pk, message)
        db_retry(job_services.job_fail, what="failing the job", job_id=job.pk, message=message, traceback=details,
                 attempt=job.attempts)
        return Job.Status.FAILED
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``exc`` or an exception it was raised from is a ``kind``: the soft time limit fires
    anywhere, e.g. inside an import that wraps it into a RuntimeError."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def job_run_safely(*, job: Job) -> str:
    """`job_run`, turning any exception into a failed job with its traceback (the worker lives on)."""
    try:
        return job_run(job=job)
    except job_services.StaleAttempt as exc:
        # Paused past the heartbeat timeout: a newer attempt holds the job; write nothing more.
        log.warning("job %s attempt %s stopped: %s", job.pk, job.attempts, exc)
        return "stale"
    except Exception as exc:  # noqa: BLE001 - every failure is recorded, then the worker moves on
        log.exception("job %s failed", job.pk)
        if _caused_by(exc, SoftTimeLimitExceeded):
            message = f"the job ran past its time limit of {job.time_limit_s} s and was stopped"
        else:
            message = f"{type(exc).__name__}: {exc}"
        try:
            db_retry(job_services.job_fail, what="failing the job", job_id=job.pk, message=message,
                     traceback=traceback.format_exc(), attempt=job.attempts)
        except (job_services.JobTransitionError, job_services.StaleAttempt) as transition:
            log.warning("job %s could not be marked failed: %s", job.pk, transition)
        return Job.Status.FAILED
