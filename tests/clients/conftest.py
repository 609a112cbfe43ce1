"""Fixtures for the client tests: a live portal, real Celery workers (shared with tests/workers), an API
token, and a TCP proxy that can break a connection mid-request the way a flaky network does."""

from __future__ import annotations

import gc
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from portal.accounts.models import Membership
from portal.accounts.services import api_token_create
from tests.portal.api.conftest import finished_job, trained_model  # noqa: F401 - fixtures reused
from tests.portal.factories import MembershipFactory
from tests.workers.conftest import broker, start_worker, worker_env  # noqa: F401 - fixtures reused


@dataclass
class Portal:
    url: str
    token: str
    membership: Membership


@pytest.fixture
def portal(live_server) -> Iterator[Portal]:  # noqa: ANN001
    membership = MembershipFactory(role=Membership.Role.OWNER)
    _, secret = api_token_create(user=membership.user, name="client-tests")
    yield Portal(url=live_server.url, token=secret, membership=membership)
    # A kept-alive HTTP connection left in a reference cycle (exception tracebacks held by
    # pytest.raises) keeps a live-server thread, and its database connection, open until collected;
    # the test database could then not be dropped at the end of the session.
    gc.collect()


class DroppingProxy:
    """Forwards 127.0.0.1:<port> to the live server. After `drop_after(n)`, the next connection that has
    carried n request bytes is closed on both sides (a dropped connection; once)."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._budget: int | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_after(self, n_bytes: int) -> None:
        with self._lock:
            self._budget = n_bytes

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counts: bool) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if counts:
                    with self._lock:
                        if self._budget is not None:
                            self._budget -= len(data)
                            if self._budget <= 0:
                                self._budget = None
                                self.dropped += 1
                                break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        """Close every connection too: a kept-alive one holds a live-server thread and its database
        connection, which would keep the test database from being dropped."""
        self.listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def dropping_proxy(live_server) -> Iterator[DroppingProxy]:  # noqa: ANN001
    proxy = DroppingProxy(live_server.url)
    yield proxy
    proxy.close()
