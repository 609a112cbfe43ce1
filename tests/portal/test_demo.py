"""`manage.py demo` on the embedded default (SQLite + filesystem broker): it serves the portal with a
training worker and a short-work worker, queues the demo jobs, keeps the console quiet (logs under
var/log/), prints the address and the password last, and Ctrl-C stops everything."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SEND_TASK = r"""
import sys, time, uuid, django
django.setup()
from datetime import timedelta
from django.core.files.base import ContentFile
from django.contrib.auth import get_user_model
from django.utils import timezone
from portal.accounts.models import Lab
from portal.datasets.models import Dataset
from portal.jobs.models import Job
from portal.config.celery import HANDLER_REQUEUE_LOST_JOBS, app
user = get_user_model().objects.get(username="demo")
lab = Lab.objects.get(slug="demo-lab")
ds = Dataset.objects.create(uid=uuid.uuid4(), owner=user, lab=lab, name="t", modality="dna", status="ready",
                            original_file=ContentFile(b"sequence,label\nACGT,1\n", name="t.csv"))
job = Job.objects.create(owner=user, lab=lab, dataset=ds, task_key="dna-classification", profile_key="baseline",
                         status="running", attempts=3, max_attempts=3, heartbeat_at=timezone.now() - timedelta(hours=2))
app.send_task(HANDLER_REQUEUE_LOST_JOBS)  # routed to `short`: the training worker may be busy with a demo job
deadline = time.time() + 60
while time.time() < deadline:
    job.refresh_from_db()
    if job.status != "running":
        break
    time.sleep(0.5)
print(job.status)
"""


DEMO_JOBS = r"""
import json, django
django.setup()
from portal.jobs.models import Job
print(json.dumps([[j.name, j.task_key, j.profile_key, j.status, j.config["hyperparameters"]["epochs"]]
                  for j in Job.objects.filter(name__startswith="Demo: ").order_by("pk")]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, deadline: float) -> None:
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer")


def test_demo_serves_portal_runs_worker_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY")}
    env.update({"LABFORMER_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.config.settings"})
    proc = subprocess.Popen([sys.executable, "manage.py", "demo", "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        # Quiet start: a few lines, then the address and the password last (logs go to var/log/).
        lines = []
        while not (lines and "password:" in lines[-1]):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.rstrip("\n"))
        assert len(lines) <= 8, lines
        assert f"Labformer is at http://127.0.0.1:{port}/" in lines[-2], lines
        match = re.search(r"Demo user: (\S+)\s+password: (\S+)", lines[-1])
        assert match and str(tmp_path / "demo_password") in lines[-1], lines
        username, password = match.groups()
        assert (tmp_path / "demo_password").read_text().strip() == password
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", time.time() + 90)
        # The admin and the login page are reachable, and the printed credentials work.
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        assert opener.open(f"{base}/admin/login/").status == 200
        page = opener.open(f"{base}/accounts/login/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}).encode()
        home = opener.open(urllib.request.Request(f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}))
        assert home.geturl().rstrip("/") == base and "Welcome, demo" in home.read().decode()
        # The short worker executes a sweep sent through the filesystem broker, while the training
        # worker may be busy with a demo job.
        out = subprocess.run([sys.executable, "-c", SEND_TASK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "failed", out.stdout
        # The demo jobs are queued once their datasets are validated, and the first finishes within minutes.
        deadline = time.time() + 600
        while time.time() < deadline:
            out = subprocess.run([sys.executable, "-c", DEMO_JOBS], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr
            jobs = json.loads(out.stdout.strip().splitlines()[-1])
            if len(jobs) == 3 and any(status == "succeeded" for *_, status, _ in jobs):
                break
            assert not any(status == "failed" for *_, status, _ in jobs), jobs
            time.sleep(3)
        assert {task for _, task, *_ in jobs} == {"tabular-classification", "dna-classification", "molecule-regression"}, jobs
        assert {profile for _, _, profile, *_ in jobs} == {"distilled", "pruned", "int8"}, jobs
        assert all(epochs <= 3 for *_, epochs in jobs) and any(status == "succeeded" for *_, status, _ in jobs), jobs
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends to the whole group
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("demo did not stop on Ctrl-C")
    # The console stayed quiet: the requests went to the access log file, not the terminal.
    rest = proc.stdout.read()
    assert "GET /" not in "\n".join(lines) + rest, rest[-2000:]
    assert "GET /healthz" in (tmp_path / "log" / "web-access.log").read_text()
    assert " ready." in (tmp_path / "log" / "worker-short.log").read_text()
    # Nothing of the group is left running.
    deadline = time.time() + 15
    while time.time() < deadline:
        left = subprocess.run(["pgrep", "-a", "-g", str(proc.pid)], capture_output=True, text=True).stdout.splitlines()
        if not left:
            break
        time.sleep(0.5)
    assert left == [], f"processes left after Ctrl-C: {left}"
