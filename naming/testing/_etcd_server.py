"""EtcdServer: one etcd member on loopback, for :mod:`naming.testing.etcd`."""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from naming.core import Closeable

from . import DEFAULT_TIMEOUT
from ._etcd_process import (
    _READY_MARKERS,
    HOST,
    EtcdError,
    TlsFiles,
    _clean_env,
    _Client,
    _PortInUse,
    _run_etcdctl,
    find_etcd,
    find_etcdctl,
)
from .process import (
    ExitedEarlyError,
    ManagedProcess,
    NotHealthyError,
    ProcessError,
    accepts_connections,
)

__all__ = ["EtcdServer"]

logger = logging.getLogger(__name__)


# -- one member ----------------------------------------------------------------------------------


class _Member:
    """How one member is launched and when it serves.

    Its ManagedProcess holds this, not the EtcdServer: a server nobody holds any more is collected
    at once, and the process's finalizer kills what it left running.
    """

    def __init__(
        self,
        *,
        binary: str,
        name: str,
        tls: TlsFiles | None,
        client_cert_auth: bool,
        extra_args: tuple[str, ...],
    ) -> None:
        self.binary = binary
        self.name = name
        self.tls = tls
        self.client_cert_auth = client_cert_auth
        self.extra_args = extra_args
        self.token = f"naming-{name}-{uuid.uuid4().hex[:12]}"
        self.initial_cluster: str | None = None  # set by EtcdCluster

    def data_dir(self, workdir: Path) -> Path:
        return workdir / f"{self.name}.etcd"

    def url(self, port: int) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{port}"

    def banner(self, process: ManagedProcess) -> str:
        return f"=== naming.testing.etcd: starting {self.name} on {self.url(process.port)}"

    def serves(self, process: ManagedProcess) -> bool:
        # etcd 3.4 with zap logs one marker, 3.5 both; either comes once the member has joined.
        logged = any(marker in process.run_log() for marker in _READY_MARKERS)
        return logged and accepts_connections(process.port)

    def command(self, process: ManagedProcess) -> list[str]:
        client = self.url(process.ports[0])
        peer = f"http://{HOST}:{process.ports[1]}"
        cmd = [
            self.binary,
            f"--name={self.name}",
            f"--data-dir={self.data_dir(process.workdir)}",
            "--logger=zap",
            "--log-outputs=stderr",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={self.initial_cluster or f'{self.name}={peer}'}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self.token}",
        ]
        if self.initial_cluster is None:
            # A lone member elects itself once the election timeout passes, also on every restart:
            # 1-2 s with the defaults. With no peers to miss heartbeats from, shorter is safe.
            cmd += ["--heartbeat-interval=50", "--election-timeout=300"]
        if self.tls is not None:
            cmd += [f"--cert-file={self.tls.server_cert}", f"--key-file={self.tls.server_key}"]
            if self.client_cert_auth:
                cmd += ["--client-cert-auth", f"--trusted-ca-file={self.tls.ca}"]
        return cmd + list(self.extra_args)


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
        self._member = _Member(
            binary=self.binary,
            name=name,
            tls=tls,
            client_cert_auth=client_cert_auth,
            extra_args=self.extra_args,
        )
        self._process = ManagedProcess(
            self._member.command,
            healthy=self._member.serves,
            name=name,
            ports=2,  # client, peer
            workdir=workdir,  # None: a temp dir of its own, removed on close
            env=_clean_env(["ETCD_", "ETCDCTL_"]),
            banner=self._member.banner,
            component="etcd",
        )
        self.workdir = self._process.workdir
        self.data_dir = self._member.data_dir(self.workdir)
        self.log_path = self._process.log_path
        self._passwords: dict[str, str] = {}
        self._auth_user: str | None = None

    # -- addresses

    @property
    def port(self) -> int:
        """The client port, chosen free at construction and kept across restarts."""
        return self._process.ports[0]

    @property
    def peer_port(self) -> int:
        return self._process.ports[1]

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self._member.url(self.port)

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    # -- state

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def paused(self) -> bool:
        return self._process.paused

    @property
    def pid(self) -> int | None:
        return self._process.pid

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
        """Launch etcd and return once it serves clients; raise EtcdError with its log otherwise.

        A lone member whose port turns out to be taken on its first start moves to fresh ports
        once; after it has served, it keeps its ports (a taken port is an error then).
        """
        with self._etcd_errors():
            self._process.start(timeout, retry_ports=self._member.initial_cluster is None)
        return self

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGTERM (after SIGCONT if paused) and wait; SIGKILL if it has not exited in ``timeout``."""
        with self._etcd_errors():
            self._process.stop(timeout)

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGKILL and wait for the process to be gone."""
        with self._etcd_errors():
            self._process.kill(timeout)

    def pause(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGSTOP: the process keeps its sockets open but answers nothing until :meth:`resume`."""
        with self._etcd_errors():
            self._process.pause(timeout)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        with self._etcd_errors():
            self._process.resume()

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdServer:
        """Stop if running, then start again on the same ports and data dir."""
        self.stop(timeout)
        return self.start(timeout)

    def close(self) -> None:
        """Stop (kill if it will not stop), remove a workdir this server made. Idempotent."""
        self._process.close()

    # -- logs

    @property
    def log_offset(self) -> int:
        """The log's size now: pass it as ``since`` to :meth:`log_tail` to see only what follows."""
        return self._process.log_offset

    def log_tail(self, lines: int = 60, *, since: int = 0) -> str:
        """The last ``lines`` lines of the log (every run appends to it), from offset ``since``."""
        return self._process.log_tail(lines, since=since)

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

    # -- used by EtcdCluster

    @property
    def _started_once(self) -> bool:
        return self._process.has_been_healthy

    def _join(self, initial_cluster: str, token: str) -> None:
        self._member.initial_cluster = initial_cluster
        self._member.token = token

    def _move_ports(self) -> None:
        self._process.choose_ports()

    def _launch(self) -> None:
        with self._etcd_errors():
            self._process.launch()

    def _wait_ready(self, deadline: float) -> None:
        with self._etcd_errors():
            self._process.wait_healthy(max(0.0, deadline - time.monotonic()))

    @contextlib.contextmanager
    def _etcd_errors(self) -> Iterator[None]:
        """The process's errors as EtcdError, in the words this harness has always used."""
        try:
            yield
        except EtcdError:
            raise
        except ExitedEarlyError as exc:
            kind = _PortInUse if exc.port_in_use else EtcdError
            raise kind(
                f"etcd: {self.name} exited with code {exc.returncode} before serving {self.url}; "
                f"log {self.log_path}:\n{exc.tail}"
            ) from exc
        except NotHealthyError as exc:
            raise EtcdError(
                f"etcd: {self.name} did not serve {self.url} in time; "
                f"log {self.log_path}:\n{exc.tail}"
            ) from exc
        except ProcessError as exc:
            raise EtcdError(str(exc)) from exc
