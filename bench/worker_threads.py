"""Training time in a Celery worker against the same run from the CLI, idle and with a competing process.

The same small run (a synthetic DNA classification file, the tiny preset, fixed epochs, seed and batch
size, no early stopping) is trained

- from the CLI: `python -m mlcore train ...` in a subprocess, and
- by a real `celery -A workers.celery worker -Q cpu -c 1` process, the way the portal runs a job: a
  dataset and a job row in PostgreSQL, `job_submit` enqueues `run_job` through Redis, the worker's
  pool process runs it (its own thread setup, heartbeat thread, metric points, artifacts),

alternately, `BENCH_REPEATS` times each, first on an otherwise idle machine and then with
`BENCH_COMPETITORS` CPU-bound processes (busy loops) running. Neither side is told a thread count
(OMP_NUM_THREADS and LABFORMER_TORCH_THREADS are removed from their environment): each uses its
default choice. The time compared is the training loop's, the same figure in both: the sum of the
epochs' times in metrics.json's `history` (training steps and validation), so neither process start-up,
the CLI's first imports, nor the worker's queueing and artifact storage count. The recipe's
`train_seconds` (reading and featurizing the data, then training) is compared too, as a second figure.

Uses its own PostgreSQL database (`labformer_bench_threads`, created and dropped) and its own key
prefix on Redis db 14. Prints per-run lines, then a JSON object as its last line:
{"ratio_idle", "ratio_loaded", "cli_idle_s", "worker_idle_s", "cli_loaded_s", "worker_loaded_s",
"ratio_idle_train_seconds", "ratio_loaded_train_seconds", ...} where each ratio is the median worker
time over the median CLI time. Target: ratio_idle and ratio_loaded <= 1.2.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "labformer_bench_threads"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
COMPETITORS = int(os.environ.get("BENCH_COMPETITORS", "1"))
RECORDS = int(os.environ.get("BENCH_RECORDS", "600"))
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "3"))
TASK, PRESET, SEED, BATCH = "dna-classification", "tiny", 0, 32

work = Path(tempfile.mkdtemp(prefix="bench-worker-threads-"))
# Both sides choose their own threads: nothing inherited from the shell decides it.
for name in ("OMP_NUM_THREADS", "LABFORMER_TORCH_THREADS", "OMP_WAIT_POLICY", "KMP_BLOCKTIME"):
    os.environ.pop(name, None)
os.environ.update({
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "CELERY_BROKER_URL": BROKER,
    "CELERY_BROKER_KEY_PREFIX": f"bench-threads-{os.getpid()}:",
    "MEDIA_ROOT": str(work / "media"),
    "LABFORMER_VAR_DIR": str(work / "var"),
    "LABFORMER_WORK_DIR": str(work / "jobs"),
    "DJANGO_SETTINGS_MODULE": "portal.config.settings",
    "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
})
sys.path.insert(0, str(ROOT))


def _database(action: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if action == "create":
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def _dna_csv(path: Path) -> Path:
    """Sequences of 100 bases; label 1 when a motif is planted (every second record)."""
    rng = random.Random(SEED)
    rows = ["sequence,label"]
    for i in range(RECORDS):
        seq = [rng.choice("ACGT") for _ in range(100)]
        if i % 2:
            at = rng.randrange(0, 92)
            seq[at:at + 8] = "TTGACGTC"
        rows.append(f"{''.join(seq)},{i % 2}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _hyperparameters() -> dict[str, Any]:
    return {"epochs": EPOCHS, "seed": SEED, "batch_size": BATCH, "patience": 0}


def _cli_run(data: Path, out: Path) -> dict[str, Any]:
    """Train from the CLI; returns its metrics.json."""
    hyper = _hyperparameters()
    args = [sys.executable, "-m", "mlcore", "train", "--task", TASK, "--data", str(data), "--preset", PRESET,
            "--epochs", str(hyper["epochs"]), "--seed", str(hyper["seed"]), "--batch-size", str(hyper["batch_size"]),
            "--set", f"patience={hyper['patience']}", "--device", "cpu", "--no-progress", "--out", str(out)]
    proc = subprocess.run(args, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"the CLI run failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "metrics.json").read_text())


def _start_worker() -> subprocess.Popen:
    log = open(work / "worker.log", "wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "-Q", "cpu", "-c", "1",
         "-n", f"bench-threads-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"],
        cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _competitors(n: int) -> list[subprocess.Popen]:
    """`n` CPU-bound processes: pure-Python busy loops, one core each."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(n)]


def main() -> None:
    _database("create")
    worker: subprocess.Popen | None = None
    competitors: list[subprocess.Popen] = []
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.files.base import ContentFile
        from django.core.management import call_command

        from portal.accounts.services import lab_create
        from portal.datasets.models import Dataset
        from portal.datasets.services import dataset_create
        from portal.jobs.models import Job
        from portal.jobs.services import job_submit
        from portal.results.models import Artifact

        call_command("migrate", verbosity=0)
        data = _dna_csv(work / "dna.csv")
        user = get_user_model().objects.create_user("bench", password="bench-password-1")
        lab = lab_create(name="Bench", owner=user)
        dataset = dataset_create(owner=user, lab=lab, name="dna", modality="dna", file=ContentFile(data.read_bytes()),
                                 filename="dna.csv", validate=False,
                                 schema={"input_cols": ["sequence"], "target_cols": ["label"]})
        Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.READY)
        dataset.refresh_from_db()

        def worker_run(timeout: float = 1800) -> dict[str, Any]:
            """Submit the run as a job, wait for the worker to finish it; returns its metrics.json."""
            job = job_submit(user=user, dataset=dataset, task_key=TASK, preset=PRESET,
                             hyperparameters=_hyperparameters())
            deadline = time.time() + timeout
            while Job.objects.filter(pk=job.pk, status__in=["queued", "running"]).exists():
                if time.time() > deadline or worker.poll() is not None:
                    tail = (work / "worker.log").read_text(errors="replace")[-3000:]
                    raise SystemExit(f"job {job.pk} did not finish in the worker:\n{tail}")
                time.sleep(0.2)
            job.refresh_from_db()
            if job.status != "succeeded":
                raise SystemExit(f"job {job.pk} {job.status}: {job.error_message}\n{job.error_traceback[-3000:]}")
            report = Artifact.objects.get(job=job, kind=Artifact.Kind.REPORT, file__endswith="metrics.json")
            with report.file.open("rb") as fh:
                return json.loads(fh.read())

        worker = _start_worker()
        worker_run()  # warm-up: the first job pays the pool process's first imports and allocations
        results: dict[str, dict[str, list[float]]] = {}
        for condition in ("idle", "loaded"):
            if condition == "loaded":
                competitors = _competitors(COMPETITORS)
                time.sleep(2)  # let them take their cores
            times: dict[str, list[float]] = {"cli": [], "worker": [], "cli_recipe": [], "worker_recipe": []}
            for r in range(REPEATS):
                # Alternate which side goes first, so a drift in the machine's load hits both alike.
                for side in (("cli", "worker") if r % 2 == 0 else ("worker", "cli")):
                    metrics = _cli_run(data, work / f"cli-{condition}-{r}") if side == "cli" else worker_run()
                    env = metrics.get("environment", {})
                    loop = sum(float(row["time"]) for row in metrics["history"])
                    times[side].append(loop)
                    times[f"{side}_recipe"].append(float(metrics["train_seconds"]))
                    print(f"{condition:6s} {side:6s} run {r + 1}: epochs {loop:.2f} s, train_seconds "
                          f"{metrics['train_seconds']:.2f} "
                          f"(threads {env.get('threads')}, inter-op {env.get('interop_threads')}, "
                          f"wait policy {env.get('omp_wait_policy')}, load {os.getloadavg()[0]:.2f})", flush=True)
            results[condition] = times
            for proc in competitors:
                _stop(proc)
            competitors = []
    finally:
        for proc in competitors:
            _stop(proc)
        if worker is not None:
            _stop(worker)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        _database("drop")

    summary: dict[str, Any] = {}
    for condition, times in results.items():
        cli, wrk = statistics.median(times["cli"]), statistics.median(times["worker"])
        summary[f"ratio_{condition}"] = round(wrk / cli, 3)
        summary[f"cli_{condition}_s"] = round(cli, 3)
        summary[f"worker_{condition}_s"] = round(wrk, 3)
        recipe = statistics.median(times["worker_recipe"]) / statistics.median(times["cli_recipe"])
        summary[f"ratio_{condition}_train_seconds"] = round(recipe, 3)
        print(f"{condition}: training loop, worker {wrk:.2f} s / CLI {cli:.2f} s = {wrk / cli:.2f} "
              f"(train_seconds: {recipe:.2f})")
    summary.update({"repeats": REPEATS, "competitors": COMPETITORS, "records": RECORDS, "epochs": EPOCHS,
                    "preset": PRESET, "cpus": len(os.sched_getaffinity(0))})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
