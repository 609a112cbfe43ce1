"""The log of one attempt, streamed to the database while it runs.

`JobLogStream` is a logging handler on the `mlcore` and `workers` loggers for the length of an
attempt. Each record goes to the attempt's local file (stored whole as a LOG artifact when the
attempt ends) and to an in-memory buffer; `send` sends what is new as one append to the attempt's
`JobLog` row. The job's heartbeat thread calls `send` every few seconds (workers/runner.py), so the
job page shows the log of a running attempt, and what a crashed worker logged is kept up to its last
beat. The training loop only formats and appends a string: no I/O to the database between steps.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from portal.jobs import services as job_services

log = logging.getLogger(__name__)

LOGGERS = ("mlcore", "workers")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JobLogStream(logging.Handler):
    """Writes the attempt's log records to `path` and keeps the unsent ones for `send`."""

    def __init__(self, path: Path, *, job_id: int | None, attempt: int) -> None:
        super().__init__()
        self.path = path
        self.job_id = job_id
        self.attempt = attempt
        self.setFormatter(logging.Formatter(FORMAT))
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._pending: list[str] = []
        self._pending_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            self._file.write(line)
            self._file.flush()  # the file is stored as it is when the attempt ends, however it ends
            if self.job_id is not None:
                with self._pending_lock:
                    self._pending.append(line)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)

    def send(self) -> None:
        """Append what was logged since the last flush to the attempt's JobLog row."""
        with self._pending_lock:
            text, self._pending = "".join(self._pending), []
        if text and self.job_id is not None:
            try:
                job_services.job_log_append(job_id=self.job_id, attempt=self.attempt, text=text)
            except Exception:
                with self._pending_lock:  # try again at the next beat, in order
                    self._pending.insert(0, text)
                raise

    def attach(self) -> None:
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self)

    def close(self) -> None:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(self)
        try:
            self.send()
        except Exception as exc:  # noqa: BLE001 - the file is still stored as an artifact
            log.warning("job %s: the last lines of the log did not reach the database: %s", self.job_id, exc)
        self._file.close()
        super().close()
