"""REST API latency, queries per request and chunked-upload throughput against a real gunicorn server.

- Seeds its own PostgreSQL database (`labformer_bench_api`, recreated and dropped at the end) with
  1,000 datasets and 10,000 jobs across two labs (bulk_create).
- Queries per request, in process (Django's test client + CaptureQueriesContext on the bench
  database): the job list at page sizes 10 and 200 and the job detail; the counts must not grow
  with the page (no N+1).
- Latency: gunicorn (`portal.config.wsgi`, gthread workers) on a free loopback port, 8 client
  threads (one keep-alive HTTP/1.1 connection each, http.client) hitting the filtered, paginated job
  list (first pages and followed cursors) and then the job detail, each for BENCH_API_SECONDS;
  p50/p95, requests/s, and the CPU per request of the server, its database backends and the clients.
- Catalog page (`/catalog/`, the signed-in researcher's view of all visible jobs): the same 8
  clients with a session cookie, for BENCH_API_SECONDS: the first page, a status filter on a page
  1-10, and a sort by a column or the primary metric, over the same seeded jobs (about 8,000 of the
  10,000 are visible to the bench user; issue 25 asks for p95 < 300 ms over 5,000). Its queries per
  page are counted in process too (they must not grow with the number of jobs).
- Upload: a BENCH_UPLOAD_MB (500) MB file through the chunked API (labformer_client, 32 MiB chunks),
  create → last chunk → finish (which re-hashes and stores the file); the gunicorn processes' RSS
  is sampled from /proc every 20 ms meanwhile.

Prints a JSON object as its last line: {"list_p95_ms", "detail_p95_ms", "list_rps", "list_server_cpu_ms",
"queries_per_list", "queries_per_detail", "catalog_p95_ms", "catalog_rps", "catalog_jobs_visible",
"queries_per_catalog", "upload_mb_per_s", "upload_peak_rss_mb", ...}.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = os.environ.get("BENCH_API_DB", "labformer_bench_api")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/13")
N_JOBS = int(os.environ.get("BENCH_JOBS", "10000"))
N_DATASETS = int(os.environ.get("BENCH_DATASETS", "1000"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "20"))
CLIENTS = int(os.environ.get("BENCH_API_CLIENTS", "8"))
UPLOAD_MB = int(os.environ.get("BENCH_UPLOAD_MB", "500"))
CHUNK_MB = int(os.environ.get("BENCH_CHUNK_MB", "32"))
WORKERS = os.environ.get("BENCH_GUNICORN_WORKERS", "2")
THREADS = os.environ.get("BENCH_GUNICORN_THREADS", "4")

work = Path(tempfile.mkdtemp(prefix="bench-api-"))
os.environ.update({
    "DATABASE_URL": f"{PG}/{DB_NAME}",
    "CELERY_BROKER_URL": BROKER,
    "MEDIA_ROOT": str(work / "media"),
    "LABFORMER_VAR_DIR": str(work / "var"),
    "LABFORMER_UPLOAD_STAGING": str(work / "media" / "staging"),
    "DJANGO_SETTINGS_MODULE": "portal.config.settings",
    "API_THROTTLE_RATE": "1000000/min",  # the bench measures the server, not the per-token throttle
    "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
    "LOG_LEVEL": "WARNING",
})
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "python"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _db(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def _seed() -> tuple[str, list[int]]:
    """Two labs, 1,000 datasets, 10,000 jobs; returns the bench user's token and some visible job ids."""
    import uuid

    from django.contrib.auth import get_user_model
    from django.db import connection

    from mlcore import catalog
    from portal.accounts.models import Membership, Visibility
    from portal.accounts.services import api_token_create, lab_create
    from portal.datasets.models import Dataset
    from portal.jobs.models import Job

    users = get_user_model().objects
    me = users.create_user("bench", password="bench-password-1")
    colleague = users.create_user("colleague", password="bench-password-1")
    stranger = users.create_user("stranger", password="bench-password-1")
    lab = lab_create(name="Bench", owner=me)
    Membership.objects.create(user=colleague, lab=lab, role=Membership.Role.MEMBER)
    other = lab_create(name="Other", owner=stranger)
    rng = random.Random(0)
    modalities = list(catalog.MODALITIES)
    datasets = []
    for i in range(N_DATASETS):
        mine = i % 5 != 0
        datasets.append(Dataset(
            uid=uuid.uuid4(), owner=rng.choice([me, colleague]) if mine else stranger, lab=lab if mine else other,
            visibility=rng.choice([Visibility.LAB, Visibility.LAB, Visibility.PUBLIC, Visibility.PRIVATE]),
            name=f"dataset-{i}", modality=modalities[i % len(modalities)], original_file=f"datasets/bench/{i}.csv",
            original_filename=f"{i}.csv", sha256=f"{i:064x}", size_bytes=1000 + i, row_count=100 + i,
            status=Dataset.Status.READY, schema={"input_cols": ["sequence"], "target_cols": ["label"]},
        ))
    Dataset.objects.bulk_create(datasets, batch_size=1000)
    datasets = list(Dataset.objects.order_by("pk"))
    tasks = list(catalog.TASKS)
    statuses = ["succeeded"] * 5 + ["failed", "cancelled", "queued", "running"]
    jobs = []
    for i in range(N_JOBS):
        ds = datasets[rng.randrange(len(datasets))]
        status = rng.choice(statuses)
        jobs.append(Job(
            owner=ds.owner, lab=ds.lab, visibility=ds.visibility, dataset=ds, task_key=rng.choice(tasks),
            profile_key=rng.choice(list(catalog.PROFILES)), config={"hyperparameters": {"epochs": 3, "lr": 3e-4},
                                                                   "preset": "tiny"},
            status=status, progress=1.0 if status == "succeeded" else 0.5, epoch=3, step=300,
            attempts=1, worker_hostname="bench@host", name=f"job-{i}",
        ))
    Job.objects.bulk_create(jobs, batch_size=2000)
    with connection.cursor() as cursor:  # spread the creation times over a month (auto_now_add gave one)
        cursor.execute("UPDATE jobs_job SET created_at = now() - (id * interval '4 minutes')")
        cursor.execute("ANALYZE")
    _, secret = api_token_create(user=me, name="bench")
    from portal.jobs.selectors import job_list_for_user

    visible = list(job_list_for_user(user=me).values_list("pk", flat=True)[:2000])
    return secret, visible


def _queries(token: str, job_id: int) -> dict[str, int]:
    """Queries per request, counted in process on the same endpoints (must not grow with the page size)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    counts = {}
    for name, url in [("list_10", "/api/v1/jobs/?status=succeeded&page_size=10"),
                      ("list_200", "/api/v1/jobs/?status=succeeded&page_size=200"),
                      ("datasets_200", "/api/v1/datasets/?page_size=200"),
                      ("detail", f"/api/v1/jobs/{job_id}/")]:
        client.get(url)  # warm: the token's last_used_at write happens at most once a while
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
        counts[name] = len(ctx.captured_queries)
    return counts


def _catalog_session() -> tuple[str, dict[str, int]]:
    """A signed-in session of the bench user (the cookie the load sends) and the catalog page's
    queries, counted in process on the first page and on a filtered, sorted later page."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from portal.jobs.selectors import job_list_for_user

    me = get_user_model().objects.get(username="bench")
    client = Client()
    client.force_login(me)
    counts = {"jobs_visible": job_list_for_user(user=me).count()}
    for name, url in [("first", "/catalog/"), ("filtered", "/catalog/?status=succeeded&sort=primary&page=5")]:
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        counts[name] = len(ctx.captured_queries)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}", counts


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.config.wsgi", "-b", f"127.0.0.1:{port}", "-w", WORKERS,
         "-k", "gthread", "--threads", THREADS, "--timeout", "300", "--log-level", "warning"],
        cwd=ROOT, env=os.environ.copy(), start_new_session=True,
    )
    import requests

    # A worker still importing the app (Django, the Dash dashboards, RDKit) accepts the connection
    # but answers late: a read timeout means "not yet", like a refused connection.
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/api/v1/tasks/", timeout=10)
            return proc
        except requests.RequestException:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    if proc.poll() is None:  # never leave the server behind (its workers would hold our stdout)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    raise RuntimeError("gunicorn did not start")


def _process_tree(root: int) -> list[int]:
    pids = [root]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == root:
                        pids.append(int(pid))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def _rss_mb(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) / 1024
        except OSError:
            pass
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of these processes so far (from /proc; gone ones left out)."""
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return out


def _cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds these processes spent since ``before`` (a process started since counts whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in _cpu_s(pids).items())


def _db_backends() -> list[int]:
    """PostgreSQL backend processes serving the bench database (the server's pooled connections)."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        return [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DB_NAME,))]


def _load(base: str, token: str, make_url, seconds: float, server_pid: int | None = None,  # noqa: ANN001
          cookie: str | None = None) -> dict[str, float]:
    """CLIENTS threads, each with its own keep-alive HTTP/1.1 connection, for ``seconds``; latency in ms.

    With ``server_pid``, also the CPU each request cost, in ms: the gunicorn processes, the PostgreSQL
    backends serving them, and the client threads. Other work on the machine stretches the latencies
    but hardly these.

    The clients use the standard library's http.client, not requests: they run on the same cores as
    the server they measure, and a requests.Session spends ~3 ms of CPU per request against ~1 ms
    (bench/README.md), time taken from the server. The requests are the same (GET, the token in the
    Authorization header, Accept */*, the whole JSON body read and parsed).
    """
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(base)
    headers = {"Accept": "*/*", "User-Agent": "labformer-bench"}
    headers.update({"Cookie": cookie} if cookie else {"Authorization": f"Bearer {token}"})
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    client_cpu = [0.0]

    def run(k: int) -> None:
        cpu0 = time.thread_time()
        rng = random.Random(k)
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        mine: list[float] = []
        state: dict = {}
        while time.monotonic() < stop:
            url = make_url(rng, state)
            t0 = time.perf_counter()
            try:
                conn.request("GET", url, headers=headers)
                response = conn.getresponse()
                raw = response.read()  # a page is read whole, as a browser would; an API answer also parsed
                is_json = (response.getheader("Content-Type") or "").startswith("application/json")
                body = json.loads(raw) if is_json else None
                status = response.status
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()  # reconnects on the next request
                body, status = None, 0
            mine.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                with lock:
                    errors[0] += 1
            state["next"] = body.get("next") if isinstance(body, dict) else None
        conn.close()
        with lock:
            latencies.extend(mine)
            client_cpu[0] += time.thread_time() - cpu0

    # A database connection closed meanwhile (DATABASE_CONN_MAX_AGE) takes its CPU with it: the
    # db figure can come out a little low, never high.
    server = _process_tree(server_pid) if server_pid else []
    server0, db0 = _cpu_s(server), _cpu_s(_db_backends() if server_pid else [])
    t0 = time.monotonic()
    threads = [threading.Thread(target=run, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    n = len(latencies)
    out = {"n": n, "errors": errors[0], "p50_ms": round(_pct(latencies, 0.5), 1),
           "p95_ms": round(_pct(latencies, 0.95), 1), "rps": round(n / elapsed, 1)}
    if server_pid:
        out.update({"server_cpu_ms": round(_cpu_since(server0, server) * 1000 / n, 2),
                    "db_cpu_ms": round(_cpu_since(db0, _db_backends()) * 1000 / n, 2),
                    "client_cpu_ms": round(client_cpu[0] * 1000 / n, 2)})
    return out


def _upload(base: str, token: str, server_pid: int) -> dict[str, float]:
    from labformer_client import Client

    path = work / "big.bin"
    block = os.urandom(1 << 20)
    with path.open("wb") as fh:
        for i in range(UPLOAD_MB):
            fh.write(block[i % 997:] + block[: i % 997])  # distinct MiBs, cheap to make
    size = path.stat().st_size
    pids = _process_tree(server_pid)
    before = _rss_mb(pids)
    samples: list[dict[int, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            samples.append(_rss_mb(pids))
            time.sleep(0.02)

    marks = {}
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with Client(base, token, timeout=300) as client:
            t0 = time.perf_counter()

            def progress(sent: int, total: int) -> None:
                if sent == total:
                    marks["sent"] = time.perf_counter()

            dataset = client.upload_dataset(path, name="big", lab="bench", modality="tabular",
                                            chunk_size=CHUNK_MB << 20, progress=progress)
            elapsed = time.perf_counter() - t0
    finally:
        sampling.set()
        sampler.join()
    assert dataset["size_bytes"] == size
    mb = size / 1e6
    peak_sum = max(sum(s.values()) for s in samples)
    peak_one = max(max(s.values()) for s in samples if s)
    return {
        "upload_mb_per_s": round(mb / elapsed, 1),
        "upload_chunks_mb_per_s": round(mb / (marks["sent"] - t0), 1),
        "upload_finish_s": round(t0 + elapsed - marks["sent"], 2),
        "upload_peak_rss_mb": round(peak_one, 1),
        "upload_rss_before_mb": round(max(before.values()), 1),
        "upload_peak_rss_sum_mb": round(peak_sum, 1),
    }


def main() -> None:
    t_start = time.time()
    _db(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    _db(f"CREATE DATABASE {DB_NAME}")
    server = None
    try:
        import django

        django.setup()
        import redis
        from django.core.management import call_command

        redis.Redis.from_url(BROKER).flushdb()
        call_command("migrate", verbosity=0)
        t0 = time.time()
        token, visible = _seed()
        log(f"seeded {N_DATASETS} datasets, {N_JOBS} jobs in {time.time() - t0:.1f}s")
        queries = _queries(token, visible[0])
        log(f"queries per request: {queries}")
        t0 = time.time()
        call_command("collectstatic", "--noinput", verbosity=0)  # the pages link hashed static names
        log(f"collectstatic in {time.time() - t0:.1f}s")
        cookie, catalog_queries = _catalog_session()
        log(f"catalog queries per page: {catalog_queries}")
        from django.db import connections

        connections.close_all()

        port = _free_port()
        server = _start_gunicorn(port)
        base = f"http://127.0.0.1:{port}"
        statuses = ["succeeded", "failed", "queued"]

        def list_url(rng: random.Random, state: dict) -> str:
            nxt = state.get("next")
            if nxt and rng.random() < 0.5:  # follow the cursor half of the time
                return nxt.split("://", 1)[1].split("/", 1)[1].join(["/", ""])
            return f"/api/v1/jobs/?status={rng.choice(statuses)}&page_size=50"

        def detail_url(rng: random.Random, state: dict) -> str:
            return f"/api/v1/jobs/{rng.choice(visible)}/"

        _load(base, token, list_url, 2)  # warm up: connections, imports, caches
        listing = _load(base, token, list_url, SECONDS, server.pid)
        log(f"list: {listing}")
        detail = _load(base, token, detail_url, SECONDS, server.pid)
        log(f"detail: {detail}")
        sorts = ["created", "status", "dataset", "owner", "primary"]

        def catalog_url(rng: random.Random, state: dict) -> str:
            roll = rng.random()
            if roll < 0.5:
                return "/catalog/"
            if roll < 0.75:
                return f"/catalog/?status={rng.choice(statuses)}&page={rng.randint(1, 10)}"
            return f"/catalog/?sort={rng.choice(sorts)}&order={rng.choice(['asc', 'desc'])}"

        _load(base, token, catalog_url, 2, cookie=cookie)  # warm up the page's templates
        catalog = _load(base, token, catalog_url, SECONDS, server.pid, cookie=cookie)
        log(f"catalog: {catalog}")
        upload = _upload(base, token, server.pid)
        log(f"upload: {upload}")
        result = {
            "list_p50_ms": listing["p50_ms"], "list_p95_ms": listing["p95_ms"], "list_rps": listing["rps"],
            "detail_p50_ms": detail["p50_ms"], "detail_p95_ms": detail["p95_ms"], "detail_rps": detail["rps"],
            "errors": listing["errors"] + detail["errors"] + catalog["errors"],
            # CPU per request (ms): gunicorn processes, PostgreSQL backends, the bench's client threads.
            "list_server_cpu_ms": listing["server_cpu_ms"], "list_db_cpu_ms": listing["db_cpu_ms"],
            "list_client_cpu_ms": listing["client_cpu_ms"], "detail_server_cpu_ms": detail["server_cpu_ms"],
            "catalog_p50_ms": catalog["p50_ms"], "catalog_p95_ms": catalog["p95_ms"], "catalog_rps": catalog["rps"],
            "catalog_server_cpu_ms": catalog["server_cpu_ms"], "catalog_db_cpu_ms": catalog["db_cpu_ms"],
            "catalog_jobs_visible": catalog_queries["jobs_visible"],
            "queries_per_catalog": catalog_queries["first"], "queries_per_catalog_filtered": catalog_queries["filtered"],
            "queries_per_list": queries["list_200"], "queries_per_list_10": queries["list_10"],
            "queries_per_dataset_list": queries["datasets_200"], "queries_per_detail": queries["detail"],
            **upload,
            "jobs": N_JOBS, "datasets": N_DATASETS, "clients": CLIENTS,
            "gunicorn": f"{WORKERS}x{THREADS} gthread", "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "bench_s": round(time.time() - t_start, 1),
        }
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        _db(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        shutil.rmtree(work, ignore_errors=True)
        try:
            import redis

            redis.Redis.from_url(BROKER).flushdb()
        except Exception:  # noqa: BLE001
            pass
    print(json.dumps(result))


if __name__ == "__main__":
    main()
