"""`Client`: a typed wrapper over the Labformer REST API v1.

Every request carries the token; GETs and the POSTs that create something (sent with an
``Idempotency-Key``) are retried on network errors, 429 and 502/503/504, so a retry never creates a
second dataset or job. Uploads are chunked: each chunk is sent at the server's offset, and after a
dropped connection the client asks the server where it is and goes on from there.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union
from urllib.parse import urlsplit

import requests

from labformer_client.errors import (
    AuthError, InvalidInput, JobFailed, LabformerError, NotFound, ServerError, WaitTimeout,
)

MiB = 1024 * 1024
FINAL_JOB_STATES = frozenset({"succeeded", "failed", "cancelled"})
FINAL_DATASET_STATES = frozenset({"ready", "invalid"})
FINAL_PREDICTION_STATES = frozenset({"succeeded", "failed"})
JobRef = Union[int, str, dict]
DatasetRef = Union[int, str, dict]
PredictionRef = Union[int, str, dict]
__version__ = "0.1.0"


def _id(ref: JobRef | DatasetRef) -> str:
    """Accept an id or an object returned by the API."""
    return str(ref["id"] if isinstance(ref, dict) else ref)


class Client:
    """A session with one portal. ``url`` is the portal's root (``http://host:8000``); ``token`` a
    personal API token (``lf_<prefix>_<secret>``). Both default to ``LABFORMER_URL`` / ``LABFORMER_TOKEN``."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 0.5, session: requests.Session | None = None) -> None:
        url = url or os.environ.get("LABFORMER_URL")
        token = token or os.environ.get("LABFORMER_TOKEN")
        if not url:
            raise LabformerError("no portal URL: pass url= or set LABFORMER_URL", code="usage")
        if not token:
            raise AuthError("no API token: pass token= or set LABFORMER_TOKEN", code="not_authenticated")
        root = url.rstrip("/")
        root = re.sub(r"/api(/v1)?$", "", root)
        self.root = root
        self.api = f"{root}/api/v1"
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}",
                                     "User-Agent": f"labformer-client/{__version__}", "Accept": "application/json"})

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing --------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            # Links the server builds (pagination) name the host it saw; keep ours, take its path.
            parts = urlsplit(path)
            return f"{urlsplit(self.root).scheme}://{urlsplit(self.root).netloc}{parts.path}" + (
                f"?{parts.query}" if parts.query else "")
        return f"{self.api}{path}"

    def _sleep(self, attempt: int, response: requests.Response | None = None) -> None:
        wait = self.backoff * (2 ** attempt)
        if response is not None and response.headers.get("Retry-After", "").isdigit():
            wait = max(wait, float(response.headers["Retry-After"]))
        time.sleep(min(wait, 30.0))

    @staticmethod
    def _error(response: requests.Response) -> LabformerError:
        """The API's JSON error as the matching exception (a non-JSON body is quoted briefly)."""
        try:
            body = response.json().get("error") or {}
        except (ValueError, AttributeError):
            body = {}
        code = str(body.get("code") or f"http_{response.status_code}")
        message = str(body.get("message") or response.text[:300] or response.reason)
        fields = body.get("fields") if isinstance(body.get("fields"), dict) else {}
        status = response.status_code
        cls: type[LabformerError]
        if status in (401, 403):
            cls = AuthError
        elif status == 404:
            cls = NotFound
        elif status >= 500 or status == 429:
            cls = ServerError
        else:
            cls = InvalidInput
        return cls(message, code=code, fields=fields, status=status)

    def request(self, method: str, path: str, *, retry: bool | None = None, **kwargs: Any) -> requests.Response:
        """Send one request; raise the matching `LabformerError` for an error status.

        ``retry`` defaults to True for GET/HEAD and for requests carrying an ``Idempotency-Key``.
        """
        headers = kwargs.get("headers") or {}
        if retry is None:
            retry = method in ("GET", "HEAD") or "Idempotency-Key" in headers
        attempts = self.retries + 1 if retry else 1
        kwargs.setdefault("timeout", self.timeout)
        url = self._url(path)
        for attempt in range(attempts):
            last = attempt + 1 >= attempts
            for value in (kwargs.get("files") or {}).values():  # a retried upload sends the file from its start
                handle = value[1] if isinstance(value, tuple) else value
                if hasattr(handle, "seek"):
                    handle.seek(0)
            try:
                response = self.session.request(method, url, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise ServerError(f"{method} {url}: {exc}", code="network") from exc
                self._sleep(attempt)
                continue
            if response.status_code < 400:
                return response
            error = self._error(response)
            transient = response.status_code in (429, 502, 503, 504) or (
                response.status_code == 409 and error.code == "in_progress")
            if transient and not last:
                self._sleep(attempt, response)
                continue
            raise error
        raise AssertionError("unreachable")

    def _get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def _post(self, path: str, body: dict | None = None, *, idempotency_key: str | None = None,
              create: bool = False) -> Any:
        headers = {}
        if create:  # a retry of this POST replays the first answer instead of creating twice
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        return self.request("POST", path, json=body if body is not None else {}, headers=headers).json()

    def _paginate(self, path: str, params: dict[str, Any], limit: int | None) -> Iterator[dict]:
        """Follow cursor pagination (`next` links) until the end or ``limit`` objects."""
        url: str | None = path
        query: dict[str, Any] | None = {k: v for k, v in params.items() if v is not None}
        count = 0
        while url:
            page = self.request("GET", url, params=query).json()
            query = None  # the `next` link carries the filters and the cursor
            for item in page["results"]:
                yield item
                count += 1
                if limit is not None and count >= limit:
                    return
            url = page.get("next")

    # --- catalog ---------------------------------------------------------------------------------

    def tasks(self) -> list[dict]:
        return self._get("/tasks/")

    def profiles(self) -> list[dict]:
        return self._get("/profiles/")

    def presets(self) -> list[dict]:
        return self._get("/presets/")

    # --- datasets --------------------------------------------------------------------------------

    def datasets(self, *, limit: int | None = None, page_size: int | None = None, **filters: Any) -> list[dict]:
        """Datasets you can see, newest first; filters: modality, lab, visibility, status, name, search, ordering."""
        return list(self._paginate("/datasets/", {**filters, "page_size": page_size}, limit))

    def dataset(self, dataset: DatasetRef) -> dict:
        return self._get(f"/datasets/{_id(dataset)}/")

    def upload_status(self, upload_id: str) -> dict:
        """The upload session as the server sees it (``offset`` = bytes stored)."""
        return self._get(f"/uploads/{upload_id}/")

    def list_uploads(self, *, status: str | None = None, limit: int | None = None) -> Iterator[dict]:
        """Your chunked uploads, newest first: the unfinished ones (``open``) unless ``status`` says
        otherwise; each says how many bytes the server holds (``offset``) of ``size_bytes``."""
        return self._paginate("/uploads/", {"status": status}, limit)

    def upload_dataset(
        self, path: str | os.PathLike, *, name: str, lab: str, modality: str | None = None,
        mapping: dict | None = None,
        policy: str = "strict", visibility: str = "lab", description: str = "", chunk_size: int = 8 * MiB,
        resume: bool = True, upload_id: str | None = None, max_failures: int = 8,
        progress: Callable[[int, int], None] | None = None, idempotency_key: str | None = None,
        on_session: Callable[[dict], None] | None = None,
    ) -> dict:
        """Upload a file in chunks and return the dataset (status ``validating``; see `wait_dataset`).

        The sha256 is computed while the chunks go out, and the server checks it at the end.
        With ``resume`` (the default) a dropped connection, a 5xx or an offset mismatch makes the
        client ask the server for its offset and continue from there, up to ``max_failures`` times
        in a row. ``upload_id`` continues an upload session started earlier (e.g. by a process that
        died): only the bytes the server does not hold are sent. ``on_session(session)`` is called
        once the session is known, before any chunk (the CLI prints its id there, so a killed
        client can be resumed). ``progress(sent, total)`` is called after each chunk.
        """
        file = Path(path)
        size = file.stat().st_size
        if size == 0:
            raise InvalidInput(f"{file}: the file is empty", code="invalid", fields={"file": ["empty"]})
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        if upload_id is None:
            session = self._post("/uploads/", {
                "name": name, "filename": file.name, "lab": lab, "modality": modality, "size_bytes": size,
                "visibility": visibility, "policy": policy, "description": description, "mapping": mapping or {},
            }, create=True, idempotency_key=idempotency_key)
            upload_id = str(session["id"])
        else:
            session = self.upload_status(upload_id)
            if int(session["size_bytes"]) != size:
                raise InvalidInput(
                    f"upload {upload_id} is of a {session['size_bytes']}-byte file ({session['filename']}); "
                    f"{file} has {size} bytes: resume it with the same file", code="invalid",
                    fields={"upload_id": [f"size {session['size_bytes']} != {size}"]})
            if session["status"] == "finished" and session.get("dataset"):
                return self._get(f"/datasets/{session['dataset']}/")  # it had finished before the client died
            if session["status"] != "open":
                raise InvalidInput(f"upload {upload_id} is {session['status']}; it cannot be resumed",
                                   code="conflict", fields={"upload_id": [session["status"]]})
        if on_session:
            on_session(session)
        offset = int(session["offset"])
        chunk_url = f"/uploads/{upload_id}/chunk/"
        ascii_name = file.name.encode("ascii", "replace").decode().replace('"', "_") or "upload"
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Disposition": f'attachment; filename="{ascii_name}"'}
        digest = hashlib.sha256()
        hashed = 0  # bytes [0, hashed) are in the digest; each byte is hashed once, in order
        failures = 0
        if progress:
            progress(offset, size)
        with file.open("rb") as fh:
            while offset < size:
                if hashed < offset:  # a resumed session: hash what an earlier run sent
                    fh.seek(hashed)
                    while hashed < offset:
                        block = fh.read(min(MiB, offset - hashed))
                        digest.update(block)
                        hashed += len(block)
                fh.seek(offset)
                chunk = fh.read(min(chunk_size, size - offset))
                if offset + len(chunk) > hashed:
                    digest.update(memoryview(chunk)[hashed - offset:])
                    hashed = offset + len(chunk)
                problem: LabformerError
                try:
                    response = self.session.put(self._url(chunk_url), params={"offset": offset}, data=chunk,
                                                headers=headers, timeout=self.timeout)
                except (requests.ConnectionError, requests.Timeout) as exc:
                    problem = ServerError(f"chunk at {offset}: {exc}", code="network")
                else:
                    if response.ok:
                        offset = int(response.json()["offset"])
                        failures = 0
                        if progress:
                            progress(offset, size)
                        continue
                    problem = self._error(response)
                    status = response.status_code
                    resumable = (status >= 500 or status == 429
                                 or (status == 409 and problem.code == "offset_mismatch")
                                 # the server got a short body (the connection broke mid-chunk)
                                 or (status == 400 and "content" in problem.fields and "resend" in problem.message))
                    if not resumable:
                        raise problem
                failures += 1
                if not resume or failures > max_failures:
                    raise problem
                self._sleep(min(failures - 1, 4))
                # Ask where the server is: it may have stored the chunk even though the answer was lost.
                offset = int(self.upload_status(upload_id)["offset"])
                if progress:
                    progress(offset, size)
        return self._post(f"/uploads/{upload_id}/finish/", {"sha256": digest.hexdigest()},
                          create=True, idempotency_key=f"finish-{upload_id}")

    def wait_dataset(self, dataset: DatasetRef, timeout: float | None = 600, poll: float = 1.0,
                     raise_on_invalid: bool = False) -> dict:
        """Poll until the dataset is ``ready`` or ``invalid`` and return it; `WaitTimeout` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.dataset(dataset)
            if current["status"] in FINAL_DATASET_STATES:
                if raise_on_invalid and current["status"] == "invalid":
                    raise InvalidInput(f"dataset {current['id']} is invalid", code="dataset_invalid",
                                       fields={"validation_report": [str(current.get("validation_report"))[:2000]]})
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"dataset {current['id']} still {current['status']} after {timeout}s",
                                  code="timeout")
            time.sleep(poll)

    def remap_dataset(self, dataset: DatasetRef, *, mapping: dict | None = None, policy: str | None = None,
                      modality: str | None = None) -> dict:
        """Read a dataset's stored bytes again with another column mapping, policy or modality.

        Returns the new version (validated again; ``reused_bytes`` true: nothing is uploaded or copied),
        or, with ``deduplicated`` true, the version that already reads the bytes that way. ``None``
        keeps the dataset's own value; a ``mapping`` replaces the whole mapping.
        """
        body = {"mapping": mapping, "policy": policy, "modality": modality}
        return self._post(f"/datasets/{_id(dataset)}/remap/", {k: v for k, v in body.items() if v is not None})

    def delete_dataset(self, dataset: DatasetRef) -> None:
        self.request("DELETE", f"/datasets/{_id(dataset)}/")

    # --- jobs ------------------------------------------------------------------------------------

    def submit_job(
        self, dataset: DatasetRef, task: str, *, profile: str = "baseline", preset: str = "tiny",
        hyperparameters: dict | None = None, device: str = "cpu", gpu_count: int | None = None, priority: int = 0,
        visibility: str = "lab", name: str = "", lab: str | None = None, time_limit_s: int | None = None,
        idempotency_key: str | None = None, target_col: str | None = None, options: dict | None = None,
    ) -> dict:
        """Launch a training job and return it (``queued``). Pass your own ``idempotency_key`` to make a
        retried script submit the job once. ``target_col`` picks the column to predict (default: the
        dataset's mapped target, else the task's usual name). ``lab`` is a lab's slug or name.
        ``options`` are the profile's options (``profiles()`` lists each profile's, e.g.
        ``{"sparsity": 0.7}`` for ``pruned``)."""
        body = {"dataset": int(_id(dataset)), "task": task, "profile": profile, "preset": preset,
                "hyperparameters": hyperparameters or {}, "device": device, "gpu_count": gpu_count,
                "priority": priority, "visibility": visibility, "name": name, "lab": lab,
                "time_limit_s": time_limit_s}
        if target_col:
            body["target_col"] = target_col
        if options:
            body["options"] = options
        return self._post("/jobs/", body, create=True, idempotency_key=idempotency_key)

    def job(self, job: JobRef) -> dict:
        return self._get(f"/jobs/{_id(job)}/")

    def jobs(self, *, limit: int | None = None, page_size: int | None = None, **filters: Any) -> list[dict]:
        """Jobs you can see, newest first, every page followed; filters: status, dataset, task, profile,
        device, lab, owner, visibility, created_after, created_before, ordering."""
        return list(self.iter_jobs(limit=limit, page_size=page_size, **filters))

    def iter_jobs(self, *, limit: int | None = None, page_size: int | None = None, **filters: Any) -> Iterator[dict]:
        return self._paginate("/jobs/", {**filters, "page_size": page_size}, limit)

    def wait(self, job: JobRef, timeout: float | None = None, poll: float = 2.0,
             progress: Callable[[dict], None] | None = None, raise_on_failure: bool = False) -> dict:
        """Poll until the job is succeeded, failed or cancelled and return it.

        Raises `WaitTimeout` after ``timeout`` seconds (the job keeps running), and `JobFailed` for a
        failed or cancelled job when ``raise_on_failure``. ``progress(job)`` is called on every poll.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.job(job)
            if progress:
                progress(current)
            if current["status"] in FINAL_JOB_STATES:
                if raise_on_failure and current["status"] != "succeeded":
                    raise JobFailed(f"job {current['id']} {current['status']}: {current.get('error_message') or ''}",
                                    code=f"job_{current['status']}", job=current)
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {current['id']} still {current['status']} after {timeout}s "
                                  f"({current.get('progress', 0):.0%} done)", code="timeout")
            time.sleep(poll)

    def cancel(self, job: JobRef) -> dict:
        return self._post(f"/jobs/{_id(job)}/cancel/")

    def retry(self, job: JobRef, *, idempotency_key: str | None = None) -> dict:
        """A new job with the same configuration."""
        return self._post(f"/jobs/{_id(job)}/retry/", create=True, idempotency_key=idempotency_key)

    def clone(self, job: JobRef, *, idempotency_key: str | None = None, **changes: Any) -> dict:
        """A new job with the same configuration and ``changes`` (task_key, profile_key, preset, hyperparameters...)."""
        return self._post(f"/jobs/{_id(job)}/clone/", changes, create=True, idempotency_key=idempotency_key)

    def metrics(self, job: JobRef) -> dict:
        return self._get(f"/jobs/{_id(job)}/metrics/")

    def series(self, job: JobRef, name: str, *, split: str | None = None, max_points: int | None = None) -> dict:
        return self._get(f"/jobs/{_id(job)}/series/", name=name, split=split, max_points=max_points)

    def report(self, job: JobRef) -> dict:
        return self._get(f"/jobs/{_id(job)}/report/")

    def artifacts(self, job: JobRef) -> list[dict]:
        return self._get(f"/jobs/{_id(job)}/artifacts/")

    def download(self, job: JobRef, kind: str = "model", dest: str | os.PathLike = ".", *,
                 name: str | None = None) -> Path:
        """Download the job's file named ``kind`` on its page into ``dest`` (a folder, or a file path)
        and check its sha256.

        Kinds (the API's ``download_kind``): model, model-optimized, predictions (the test split's
        predictions as CSV), evaluation, evaluation-optimized, attention, embeddings, projection,
        metrics, report (the compression report), log (the latest attempt's), checkpoint. An artifact
        kind of the API (``predictions``, ``embeddings``...) still names a file when the server gives no
        ``download_kind``; ``name`` picks a file by its stored name (``evaluation.npz``)."""
        artifacts = self.artifacts(job)
        candidates = [a for a in artifacts if a.get("download_kind", a["kind"]) == kind
                      and (name is None or _same_name(a, name))]
        if not candidates and name is not None:  # --kind predictions --name evaluation.npz: the artifact kind
            candidates = [a for a in artifacts if a["kind"] == kind and _same_name(a, name)]
        if not candidates:
            which = f"{kind!r} file" + (f" named {name!r}" if name else "")
            have = sorted({str(a.get("download_kind", a["kind"])) for a in artifacts if a["kind"] != "checkpoint"})
            raise NotFound(f"job {_id(job)} has no {which}; it has: {', '.join(have) or 'nothing yet'}",
                           code="not_found", status=404)
        artifact = max(candidates, key=lambda a: a["id"])
        response = self.request("GET", f"/jobs/{_id(job)}/artifacts/{artifact['id']}/download/", stream=True)
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(("/", os.sep)):
            match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', response.headers.get("Content-Disposition", ""))
            filename = Path(match.group(1)).name if match else f"job{_id(job)}-{kind}"
            target.mkdir(parents=True, exist_ok=True)
            target = target / filename
        _save_stream(response, target, expected_sha256=artifact.get("sha256"), what=f"artifact {artifact['id']}")
        return target

    # --- predictions -----------------------------------------------------------------------------

    def predict(self, job: JobRef, records: list, *, model: str = "baseline", wait: float = 20.0,
                timeout: float | None = 600, poll: float = 1.0, idempotency_key: str | None = None) -> list[dict]:
        """Predict ``records`` with a finished job's model; one dict per record, in order.

        A record is ``{"id": ..., "input": ...}`` or, for dna/protein/smiles, the bare string. Each
        answer has ``index``, ``id``, ``prediction`` and ``probabilities`` (classification; else None).
        Small batches come back in the same request (the server waits up to ``wait`` s for a worker);
        otherwise the client polls the prediction (`WaitTimeout` after ``timeout`` s) and, for a batch
        the server answered as a CSV (over 1,000 records), reads the CSV. Records the model cannot
        take raise `InvalidInput` with ``fields`` naming each (``records[3]``); ``model="optimized"``
        uses the job's optimized model.
        """
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = self.request("POST", f"/jobs/{_id(job)}/predict/", params={"model": model, "wait": wait},
                                json={"records": list(records)}, headers=headers,
                                timeout=max(self.timeout, wait + 30))
        prediction = response.json()
        if response.status_code == 202:
            prediction = self.wait_prediction(prediction, timeout=timeout, poll=poll)
        if prediction["output"] == "inline":
            return prediction["predictions"]
        return _csv_predictions(self._download_text(prediction))

    def predict_file(self, job: JobRef, path: str | os.PathLike, dest: str | os.PathLike = ".", *,
                     model: str = "baseline", timeout: float | None = 3600, poll: float = 2.0,
                     idempotency_key: str | None = None) -> Path:
        """Predict every record of a data file (the training data's format and columns, targets
        optional) and download the CSV to ``dest``: a file path when it ends in ``.csv`` or is an
        existing file, else a folder (made if missing). Returns the CSV's path.

        The file is predicted asynchronously on the server; this waits for it (`WaitTimeout` after
        ``timeout`` s, the prediction keeps going: see `prediction`). Bad records raise `InvalidInput`
        naming each line."""
        file = Path(path)
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        with file.open("rb") as fh:
            response = self.request("POST", f"/jobs/{_id(job)}/predict/", params={"model": model},
                                    files={"file": (file.name, fh)}, headers=headers)
        prediction = self.wait_prediction(response.json(), timeout=timeout, poll=poll)
        target = Path(dest)
        if not (target.suffix.lower() == ".csv" or target.is_file()):
            target.mkdir(parents=True, exist_ok=True)
            target = target / f"{file.name.split('.')[0]}-predictions-{prediction['id']}.csv"
        response = self.request("GET", prediction["result_url"], stream=True)
        _save_stream(response, target, expected_sha256=prediction["result_sha256"], what=f"prediction {prediction['id']}")
        return target

    def prediction(self, prediction: PredictionRef) -> dict:
        """A prediction request you made: status, inline predictions, result_url, error."""
        return self._get(f"/predictions/{_id(prediction)}/")

    def predictions(self, *, limit: int | None = None, **filters: Any) -> list[dict]:
        """Your prediction requests, newest first; filters: job, status, output."""
        return list(self._paginate("/predictions/", filters, limit))

    def wait_prediction(self, prediction: PredictionRef, *, timeout: float | None = 600, poll: float = 1.0) -> dict:
        """Poll until the prediction succeeded and return it; a failed one raises `InvalidInput` (bad
        records, each named in ``fields``) or `ServerError`; `WaitTimeout` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        current = prediction if isinstance(prediction, dict) and "status" in prediction else self.prediction(prediction)
        while current["status"] not in FINAL_PREDICTION_STATES:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"prediction {current['id']} still {current['status']} after {timeout}s",
                                  code="timeout")
            time.sleep(poll)
            current = self.prediction(current)
        if current["status"] == "failed":
            error = current.get("error") or {}
            fields: dict[str, Any] = {}
            for bad in error.get("records") or []:
                where = f"records[{bad['index']}]" if "index" in bad else f"line {bad.get('line', bad.get('row'))}"
                fields.setdefault(where, []).append(f"id {bad.get('id')!r}: {bad.get('message')}")
            cls = InvalidInput if error.get("code") in ("invalid_records", "invalid_input") else ServerError
            raise cls(error.get("message") or f"prediction {current['id']} failed",
                      code=error.get("code") or "prediction_failed", fields=fields)
        return current

    def _download_text(self, prediction: dict) -> str:
        response = self.request("GET", prediction["result_url"])
        return response.content.decode("utf-8")


def _same_name(artifact: dict, name: str) -> bool:
    """Storage may add a random suffix to a taken name (``predictions_a1B2c3d.csv``)."""
    stored = str(artifact.get("name") or "")
    stem, dot, suffix = name.rpartition(".")
    return stored == name or (bool(dot) and re.fullmatch(rf"{re.escape(stem)}_[A-Za-z0-9]{{7}}\.{re.escape(suffix)}",
                                                          stored) is not None)


def _save_stream(response: requests.Response, target: Path, *, expected_sha256: str | None, what: str) -> None:
    """Stream a download into ``target`` through a .part file, checking the sha256 when known."""
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with response, partial.open("wb") as out:
            for block in response.iter_content(MiB):
                digest.update(block)
                out.write(block)
    except requests.RequestException as exc:
        partial.unlink(missing_ok=True)
        raise ServerError(f"download of {what} broke off: {exc}", code="network") from exc
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        partial.unlink(missing_ok=True)
        raise ServerError(f"{what}: sha256 {digest.hexdigest()} != {expected_sha256}", code="checksum_mismatch")
    partial.replace(target)


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _csv_predictions(text: str) -> list[dict]:
    """A prediction CSV (id, index, prediction, prob_<class>... or one column per target) as the
    inline answer's dicts."""
    rows = list(csv.reader(io.StringIO(text)))
    header, out = rows[0], []
    probs = [(i, name[5:]) for i, name in enumerate(header) if name.startswith("prob_")]
    for row in rows[1:]:
        item: dict[str, Any] = {header[1]: int(row[1]), "id": row[0]}
        if "prediction" in header:
            item["prediction"] = row[2] if probs else _number(row[2])
        else:  # multi-target regression: one column per target
            item["prediction"] = {name: float(row[i]) for i, name in enumerate(header) if i >= 2}
        item["probabilities"] = {name: float(row[i]) for i, name in probs} or None
        out.append(item)
    return out
