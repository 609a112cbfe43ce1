"""`manage.py demo`: the embedded single-machine portal in one command.

Migrates, creates a demo user and lab, uploads the demo datasets, and runs the web server and two
Celery workers side by side until Ctrl-C, which stops them all: a training worker (jobs, one at a
time) and a short-work worker (validation, predictions, and the periodic sweeps with beat embedded),
so an upload is validated while a job trains. Once their datasets are validated it queues a few tiny
demo jobs (a molecule, a DNA and a tabular task, each with an optimization profile), so the
dashboards have something to show within minutes. The console stays quiet: every process logs to a
file under ``var/log/``, and the address and the password are printed last.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from portal.accounts.models import Lab, Membership
from portal.accounts.services import lab_create, membership_set
from portal.common.errors import ServiceError
from portal.datasets.models import Dataset
from portal.jobs.services import job_submit


def demo_worker_commands(*, bindir: Path | None = None, var_dir: Path | None = None) -> dict[str, list[str]]:
    """The command lines of `make demo`'s workers, by name: what the demo starts, and what a test
    starts to get exactly the demo's layout.

    - ``training``: jobs from `cpu` and `gpu`, one at a time (it also takes short work when idle).
    - ``short``: validation, predictions and the periodic sweeps (beat embedded, ``-B``), two at a
      time, so none of it waits behind a training job.
    """
    celery = str((bindir or Path(sys.executable).parent) / "celery")
    var = Path(var_dir or settings.VAR_DIR)
    common = [celery, "-A", "workers.celery", "worker", "--loglevel", "INFO"]
    return {
        "training": [*common, "-Q", "cpu,gpu", "-c", "1", "-n", "training@%h"],
        "short": [*common, "-Q", "short", "-c", "2", "-n", "short@%h", "-B",
                  "--schedule", str(var / "celerybeat-schedule")],
    }


@dataclass(frozen=True)
class DemoJob:
    """A tiny job queued on a demo dataset (mlcore.demo_data key) as soon as it is validated."""

    dataset_key: str
    task_key: str
    profile_key: str
    label: str


# Tiny preset, three epochs, the cheaper profiles on the bigger sets: each finishes within a minute or
# two on two idle cores. Queued in this order, the smallest first, so the first results come soonest.
DEMO_JOBS = (
    DemoJob("wine-cultivars", "tabular-classification", "distilled", "tabular, distilled"),
    DemoJob("solubility-huuskonen", "molecule-regression", "pruned", "molecule, pruned"),
    DemoJob("synthetic-promoters", "dna-classification", "int8", "DNA, int8"),
)
DEMO_JOB_EPOCHS = 3


def demo_jobs_queue(*, user: AbstractBaseUser, lab: Lab, pending: list[DemoJob]) -> list[DemoJob]:
    """Queue the pending demo jobs once all their datasets are validated (in DEMO_JOBS order, each once:
    an idempotency key per job); returns them all while some dataset is still being validated. A
    dataset that ended invalid drops its job."""
    from mlcore.demo_data import DEMO_DATASETS  # torch-free; loaded by the command, not the web process

    datasets = {demo: Dataset.objects.filter(lab=lab, name=DEMO_DATASETS[demo.dataset_key].name)
                .order_by("-version").first() for demo in pending}
    if any(d is not None and d.status in (Dataset.Status.UPLOADED, Dataset.Status.VALIDATING) for d in datasets.values()):
        return pending
    for demo, dataset in datasets.items():
        if dataset is None or dataset.status != Dataset.Status.READY:
            continue
        try:
            job_submit(user=user, dataset=dataset, task_key=demo.task_key, profile_key=demo.profile_key,
                       preset="tiny", hyperparameters={"epochs": DEMO_JOB_EPOCHS}, lab=lab,
                       name=f"Demo: {demo.label}", idempotency_key=f"demo:{demo.dataset_key}:{demo.profile_key}")
        except ServiceError:
            continue  # the catalog no longer fits this pairing: the demo goes on without it
    return []


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ... ; starttime is [19])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes whose parent is `pid`; empty where /proc is not available."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(entry.name)
        if fields and int(fields[1]) == pid:
            found.append((int(entry.name), fields[19]))
    return found


def _kill_quietly(child: tuple[int, str]) -> None:
    """SIGKILL a remembered child if it is still the same process (same start time: no reused pid)."""
    pid, started = child
    fields = _stat(pid)
    if fields and fields[19] == started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_http(url: str, running: Callable[[], bool], timeout: float) -> bool:
    """True once `url` answers 200; False when `running()` turns false or the time is up."""
    deadline = time.time() + timeout
    while time.time() < deadline and running():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


class Command(BaseCommand):
    help = "Run the embedded demo: web server, a training worker and a short-work worker, with a demo user, lab and jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--setup-only", action="store_true", help="migrate, create the demo user and upload the demo datasets, then exit")
        parser.add_argument("--no-jobs", action="store_true", help="do not queue the demo jobs")

    def handle(self, *args, bind: str, setup_only: bool, no_jobs: bool, **options) -> None:  # noqa: ANN002, ANN003
        var = Path(settings.VAR_DIR)
        logs = var / "log"
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout.write("Setting up the demo (migrations, demo user and lab, demo datasets) ...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        username, password = self._demo_user()
        credentials = f"Demo user: {username}  password: {password}  (also in {var / 'demo_password'}; " \
                      "lab 'Demo Lab'; also a Django admin)"
        with open(logs / "demo-setup.log", "w") as setup_log:
            call_command("load_demo_data", lab="demo-lab", user=username, stdout=setup_log)
        if setup_only:
            self.stdout.write(self.style.SUCCESS(credentials))
            return
        user = get_user_model().objects.get(username=username)
        lab = Lab.objects.get(slug="demo-lab")
        pending = [] if no_jobs else list(DEMO_JOBS)
        base = Path(settings.BASE_DIR)
        bindir = Path(sys.executable).parent
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        commands = {
            **{f"worker-{name}": argv for name, argv in demo_worker_commands(bindir=bindir, var_dir=var).items()},
            "web": [str(bindir / "gunicorn"), "portal.config.wsgi", "--bind", bind, "--workers", "2",
                    "--threads", "4", "--graceful-timeout", "5", "--access-logfile", str(logs / "web-access.log")],
        }
        log_files = {name: logs / f"{name}.log" for name in commands}
        procs = []
        for name, argv in commands.items():
            with open(log_files[name], "ab") as out:  # the child keeps its own copy of the descriptor
                procs.append(subprocess.Popen(argv, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT))
        stop = {"now": False}

        def _stop(signum, frame) -> None:  # noqa: ANN001
            stop["now"] = True

        def running() -> bool:
            return not stop["now"] and all(p.poll() is None for p in procs)

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            _wait_http(f"http://{bind}/healthz", running, timeout=90)
            self.stdout.write(f"Logs: {logs}/ (web-access.log: every request; web.log, worker-training.log, "
                              "worker-short.log, demo-setup.log)")
            if pending:
                self.stdout.write(f"Demo jobs: {len(pending)} tiny jobs ({', '.join(j.label for j in pending)}) are "
                                  "queued as soon as their datasets are validated; results within minutes.")
            self.stdout.write("Ctrl-C stops the web server and the workers.")
            self.stdout.write(self.style.SUCCESS(f"Labformer is at http://{bind}/"))
            self.stdout.write(self.style.SUCCESS(credentials))
            self.stdout.flush()
            checked = 0.0
            while running():
                if pending and time.time() - checked > 2:
                    checked = time.time()
                    try:
                        pending = demo_jobs_queue(user=user, lab=lab, pending=pending)
                    except DatabaseError:
                        pass  # SQLite busy with a worker's write: try again at the next check
                time.sleep(0.5)
        finally:
            # Remember each server's own children (gunicorn workers, the worker's pool) now: if a
            # server has to be killed, its children would otherwise outlive it as orphans.
            children = {p.pid: _children(p.pid) for p in procs}
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            deadline = time.time() + 20
            for p in procs:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                for child in children[p.pid]:
                    _kill_quietly(child)
        failed = [name for name, p in zip(commands, procs)
                  if p.returncode not in (0, -signal.SIGTERM, None) and not stop["now"]]
        if failed:
            raise SystemExit("demo stopped because a process exited: "
                             + ", ".join(f"{name} (see {log_files[name]})" for name in failed))

    def _demo_user(self) -> tuple[str, str]:
        User = get_user_model()
        secret_file = Path(settings.VAR_DIR) / "demo_password"
        if secret_file.exists():
            password = secret_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(9)
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            secret_file.write_text(password)
            secret_file.chmod(0o600)
        user, created = User.objects.get_or_create(username="demo", defaults={"is_staff": True, "is_superuser": True})
        if created or not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        lab = Lab.objects.filter(slug="demo-lab").first() or lab_create(name="Demo Lab", owner=user, slug="demo-lab")
        if not Membership.objects.filter(user=user, lab=lab).exists():
            membership_set(lab=lab, user=user, role=Membership.Role.OWNER)
        return user.username, password
