"""EtcdServer: one etcd member on loopback, for :mod:`naming.testing.etcd`."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import tempfile
import time
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path

from naming.core import Closeable

from . import DEFAULT_TIMEOUT
from ._etcd_process import (
    _POLL,
    _PORT_IN_USE,
    _READY_MARKERS,
    HOST,
    EtcdError,
    TlsFiles,
    _clean_env,
    _Client,
    _free_ports,
    _PortInUse,
    _process_state,
    _Resources,
    _run_etcdctl,
    _tcp_connects,
    find_etcd,
    find_etcdctl,
)

__all__ = ["EtcdServer"]

logger = logging.getLogger(__name__)


# -- one member ----------------------------------------------------------------------------------


class EtcdServer(Closeable, _Client):
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
