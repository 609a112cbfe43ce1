"""`manage.py demo`: the embedded single-machine portal in one command.

Migrates, creates a demo user and lab (printing the credentials), uploads the demo datasets (the
worker validates them), and runs the web server and one
Celery worker (with the periodic lost-job check embedded) side by side until Ctrl-C, which stops both.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from portal.accounts.models import Lab, Membership
from portal.accounts.services import lab_create, membership_set


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


class Command(BaseCommand):
    help = "Run the embedded demo: web server + one worker, with a demo user and lab."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000")
        parser.add_argument("--setup-only", action="store_true", help="migrate and create the demo user, then exit")

    def handle(self, *args, bind: str, setup_only: bool, **options) -> None:  # noqa: ANN002, ANN003
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        username, password = self._demo_user()
        self.stdout.write(self.style.SUCCESS(
            f"Demo user: {username}  password: {password}  (lab 'Demo Lab'; also a Django admin)"
        ))
        call_command("load_demo_data", lab="demo-lab", user=username, stdout=self.stdout)
        if setup_only:
            return
        base = Path(settings.BASE_DIR)
        bindir = Path(sys.executable).parent
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        procs = [
            subprocess.Popen(
                [str(bindir / "celery"), "-A", "workers.celery", "worker", "-B", "-Q", "cpu,gpu", "-c", "1",
                 "--loglevel", "INFO", "--schedule", str(Path(settings.VAR_DIR) / "celerybeat-schedule")],
                cwd=base, env=env,
            ),
            subprocess.Popen(
                [str(bindir / "gunicorn"), "portal.config.wsgi", "--bind", bind, "--workers", "2",
                 "--threads", "4", "--graceful-timeout", "5", "--access-logfile", "-"],
                cwd=base, env=env,
            ),
        ]
        self.stdout.write(self.style.SUCCESS(f"Labformer is at http://{bind}/  (Ctrl-C stops the web server and the worker)"))
        stop = {"now": False}

        def _stop(signum, frame) -> None:  # noqa: ANN001
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            while not stop["now"] and all(p.poll() is None for p in procs):
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
        failed = [p.args[0] for p in procs if p.returncode not in (0, -signal.SIGTERM, None) and not stop["now"]]
        if failed:
            raise SystemExit(f"demo stopped because a process exited: {', '.join(map(str, failed))}")

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
