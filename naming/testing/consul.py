"""ConsulDouble: an in-process double of Consul's HTTP API, for tests. Not a Consul server.

No Consul binary can be installed where grpc-naming's tests run, so the Consul backend is tested
against this double: the endpoints the backend and py-consul use, with Consul's state rules
(:mod:`._consul_state`) and the faults a real agent has. docs/testing-consul-double.md lists each
endpoint, the behaviour modelled and its source in Consul's docs and code.

* ``ConsulDouble(acl=None, datacenter="dc1", node_address="127.0.0.1", reap_interval=0.05)``;
  ``start()`` serves on a free 127.0.0.1 port (``endpoint``), ``close()`` ends it all.
* Faults: ``restart()`` (the agent forgets every service registered through the API and drops the
  open connections, then serves again on the same port), ``hang()``/``unhang()`` (connections are
  accepted and nothing is answered), ``stop()``/``start()``, and ``reset_index(to)``.
* ``requests`` counts the requests per kind (``health``, ``register``, ``check-pass``, ...);
  ``tokens`` keeps every token sent (``header_tokens``: how many came in ``X-Consul-Token``),
  ``queries`` the parameters of every health query.

Its threads are named ``consul-double-*``; ``close()`` joins every one of them.
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import socket
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._consul_state import ApiError, ConsulState, parse_duration
from ._ports import HOST, free_ports

__all__ = ["ConsulDouble"]

DEFAULT_WAIT = 300.0  # Consul's default blocking wait: 5 minutes
MAX_WAIT = 600.0  # and its maximum: 10 minutes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: ConsulDouble

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        threading.current_thread().name = "consul-double-http"
        double = self.double
        with double._lock:
            if double._server is not self:
                request.close()
                return
            double._open.add(request)
        # Go's net/http (so Consul) sets TCP_NODELAY on every connection: without it, a
        # keep-alive client would wait out delayed ACKs between the headers and the body
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with double._lock:
                double._open.discard(request)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the double stays quiet
        pass

    def do_GET(self) -> None:
        self.server.double._handle(self, "GET")

    def do_PUT(self) -> None:
        self.server.double._handle(self, "PUT")


class ConsulDouble:
    """See the module docstring. ``acl`` maps tokens to ``"write"`` or ``"read"`` (ACLs on, default
    deny); None turns ACLs off. ``probe(target) -> bool`` runs gRPC checks (a gRPC health call by
    default). ``port`` is a free port by default. ``tls`` (a server-side SSLContext) serves https,
    requiring client certificates if the context does."""

    def __init__(
        self,
        *,
        acl: dict[str, str] | None = None,
        datacenter: str = "dc1",
        node: str = "double-node",
        node_address: str = HOST,
        reap_interval: float = 0.05,
        probe: Callable[[str], bool] | None = None,
        rng: random.Random | None = None,
        port: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.state = ConsulState(
            node=node, node_address=node_address, datacenter=datacenter, acl=acl
        )
        self.port = port if port is not None else free_ports(1)[0]
        self.tls = tls
        self.requests: Counter[str] = Counter()
        self.tokens: list[str | None] = []
        self.queries: list[dict[str, list[str]]] = []
        self.header_tokens = 0  # requests whose token came in the X-Consul-Token header
        self._reap_interval = reap_interval
        self._probe = probe or _grpc_health_probe
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._serve: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._hung = threading.Event()
        self._closing = threading.Event()
        self._generation = 0  # moves at every stop: requests of an older generation are dropped
        self._reaper = threading.Thread(target=self._reap, name="consul-double-reaper", daemon=True)
        self._reaper.start()

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>``; with ``tls``, speak https to it."""
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> ConsulDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ConsulDouble {self.endpoint} ({'running' if self.running else 'stopped'})>"

    # -- lifecycle and faults --------------------------------------------------------------------

    def start(self) -> ConsulDouble:
        """Serve on ``port`` (the same one after a stop). Idempotent."""
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((HOST, self.port), _Handler)
            server.double = self
            if self.tls is not None:  # the handshake runs in the request's thread, on first read
                server.socket = self.tls.wrap_socket(
                    server.socket, server_side=True, do_handshake_on_connect=False
                )
            self._server = server
            self._serve = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="consul-double-serve",
                daemon=True,
            )
            self._serve.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port refuses connections, open ones are dropped."""
        with self._lock:
            server, self._server = self._server, None
            serve, self._serve = self._serve, None
            self._generation += 1
            open_now, self._open = list(self._open), set()
        with self.state.cond:
            self.state.cond.notify_all()
        if server is None:
            return
        server.shutdown()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins the request threads
        if serve is not None:
            serve.join(5)

    def restart(self) -> None:
        """An agent restart: connections drop, and every API-registered service is forgotten."""
        self.stop()
        self.state.forget_all()
        self.start()

    def hang(self) -> None:
        """Accept connections but answer nothing, until ``unhang()``."""
        self._hung.set()

    def unhang(self) -> None:
        self._hung.clear()
        with self.state.cond:
            self.state.cond.notify_all()

    def reset_index(self, to: int = 1) -> None:
        """The index goes back to ``to``; services and checks are kept."""
        self.state.reset_index(to)

    def close(self) -> None:
        self._closing.set()
        self._hung.clear()
        self.stop()
        self._reaper.join(5)

    # -- direct views, for tests -----------------------------------------------------------------

    def check_status(self, check_id: str) -> str | None:
        with self.state.cond:
            check = self.state.checks.get(check_id)
            return check.status if check is not None else None

    def service_ids(self) -> list[str]:
        with self.state.cond:
            return sorted(self.state.services)

    # -- requests --------------------------------------------------------------------------------

    def _reap(self) -> None:
        while not self._closing.wait(self._reap_interval):
            self.state.tick(self._probe)

    def _handle(self, handler: _Handler, method: str) -> None:
        sock = handler.connection
        with self._lock:
            generation = self._generation
        try:
            if not self._wait_unhung(sock, generation):
                handler.close_connection = True
                return
            url = urllib.parse.urlsplit(handler.path)
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            length = int(handler.headers.get("Content-Length") or 0)
            body = handler.rfile.read(length) if length else b""
            token = _token(query, handler.headers)
            if token is not None:
                self.tokens.append(token)
                self.header_tokens += bool(handler.headers.get("X-Consul-Token"))
            try:
                status, headers, payload = self._route(method, url.path, query, body, token, sock)
            except ApiError as exc:
                status, headers, payload = exc.status, {}, exc.body.encode()
            if status == 0 or not self._wait_unhung(sock, generation):
                handler.close_connection = True
                return  # the client went away, or the agent stopped or hung meanwhile
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            handler.close_connection = True

    def _alive(self, sock: socket.socket, generation: int) -> bool:
        if self._generation != generation or self._closing.is_set():
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable or isinstance(sock, ssl.SSLSocket):
                return True  # an SSL socket cannot be peeked at: taken as alive
            return sock.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def _wait_unhung(self, sock: socket.socket, generation: int) -> bool:
        while self._hung.is_set():
            if not self._alive(sock, generation):
                return False
            with self.state.cond:
                self.state.cond.wait(0.05)
        return self._alive(sock, generation)

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        token: str | None,
        sock: socket.socket,
    ) -> tuple[int, dict[str, str], bytes]:
        parts = path.strip("/").split("/")
        if method == "PUT" and path == "/v1/agent/service/register":
            self.requests["register"] += 1
            try:
                spec = json.loads(body or b"null")
            except ValueError as exc:
                raise ApiError(400, f"Request decode failed: {exc}") from None
            self.state.register(spec, token)
            return 200, {}, b""
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "deregister"]:
            self.requests["deregister"] += 1
            self.state.deregister(urllib.parse.unquote("/".join(parts[4:])), token)
            return 200, {}, b""
        if method == "PUT" and parts[:3] == ["v1", "agent", "check"] and len(parts) >= 5:
            verb, check_id = parts[3], urllib.parse.unquote("/".join(parts[4:]))
            self.requests[f"check-{verb}"] += 1
            output = (query.get("note") or [""])[0]
            statuses = {"pass": "passing", "warn": "warning", "fail": "critical"}
            if verb == "update":
                update = json.loads(body or b"{}")
                status, output = str(update.get("Status", "")), str(update.get("Output", ""))
                if status not in statuses.values():
                    raise ApiError(400, f'Invalid check status: "{status}"')
            elif verb in statuses:
                status = statuses[verb]
            else:
                raise ApiError(404, f"Invalid URL path: not a supported endpoint: {path}")
            self.state.update_check(check_id, status, output, token)
            return 200, {}, b""
        if method == "GET" and parts[:3] == ["v1", "health", "service"] and len(parts) == 4:
            self.requests["health"] += 1
            self.queries.append(query)
            return self._health(urllib.parse.unquote(parts[3]), query, token, sock)
        if method == "GET" and path == "/v1/status/leader":
            return 200, {"Content-Type": "application/json"}, b'"127.0.0.1:8300"'
        raise ApiError(404, f"Invalid URL path: not a supported endpoint: {path}")

    def _health(
        self, name: str, query: dict[str, list[str]], token: str | None, sock: socket.socket
    ) -> tuple[int, dict[str, str], bytes]:
        state = self.state
        dc = (query.get("dc") or [""])[0]
        if dc and dc != state.datacenter:
            raise ApiError(500, "No path to datacenter")
        allowed = state.authorize(token, False, name)
        passing = "passing" in query and (query["passing"][0] or "1").lower() not in ("0", "false")
        tags = query.get("tag", [])
        index = int((query.get("index") or ["0"])[0] or 0)
        with self._lock:
            generation = self._generation
        if index > 0:
            wait = parse_duration((query.get("wait") or [""])[0], "wait") or DEFAULT_WAIT
            wait = min(wait, MAX_WAIT)
            deadline = time.monotonic() + wait + self._rng.uniform(0, wait / 16)
            with state.cond:
                while state.service_index(name) <= index:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    state.cond.wait(min(remaining, 0.1))
                    if not self._alive(sock, generation):
                        return 0, {}, b""
        with state.cond:
            entries = state.health(name, passing=passing, tags=tags, allowed=allowed)
            current = state.service_index(name)
        headers = {
            "Content-Type": "application/json",
            "X-Consul-Index": str(current),
            "X-Consul-KnownLeader": "true",
            "X-Consul-LastContact": "0",
        }
        return 200, headers, json.dumps(entries).encode()


def _token(query: dict[str, list[str]], headers: Any) -> str | None:
    """Consul's order: ``?token=``, then ``X-Consul-Token``, then ``Authorization: Bearer``."""
    if query.get("token"):
        return query["token"][0]
    if headers.get("X-Consul-Token"):
        return str(headers["X-Consul-Token"])
    auth = str(headers.get("Authorization") or "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


def _grpc_health_probe(target: str) -> bool:
    """Consul's gRPC check: the standard health service's Check call answers SERVING."""
    import grpc  # late: only a double with gRPC checks needs it
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

    host_port, _, service = target.partition("/")
    with grpc.insecure_channel(host_port) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=0.5
            )
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
