"""Real ZooKeeper servers for tests and demos: a standalone server or an ensemble, on loopback.

Debian's ``zookeeper`` package (``apt-get install zookeeper``, which pulls in a JRE) provides the
jar; :func:`find_zookeeper` finds it and ``java``. Each member is a
:class:`naming.testing.process.ManagedProcess` on free 127.0.0.1 ports, with the admin server
off, a short tick (200 ms, so elections take well under a second) and session timeouts from
``min_session_timeout`` (1 s) to ``max_session_timeout`` (60 s)::

    with ZkServer() as zk:              # closed (and its temp dir removed) on exit
        zk.start()
        zk.kill()                       # SIGKILL; also stop(), pause()/resume(), restart()
        zk.restart()

    with ZkEnsemble(3) as ensemble:
        ensemble.start()
        ensemble.leader().kill()

:func:`expire_session` forces the expiry of a live client's session (a second client opens the
same session id and password, then closes it: the server ends the session for both), and
:func:`zkcli` runs Debian's ``zkCli.sh`` against a server. Nothing binds beyond 127.0.0.1, every
wait is bounded, and nothing outlives ``close()`` or the interpreter.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from naming.core import Closeable

from ._wait import DEFAULT_TIMEOUT
from .process import HOST, ManagedProcess, ProcessError

__all__ = [
    "ZK_JAR",
    "ZkEnsemble",
    "ZkError",
    "ZkServer",
    "expire_session",
    "find_zookeeper",
    "four_letter",
    "zkcli",
]

ZK_JAR = "/usr/share/java/zookeeper.jar"
_SLF4J_SIMPLE = "/usr/share/java/slf4j-simple.jar"  # server log lines on stderr, into the log file
# Debian's jar lists only part of netty in its Class-Path; the TLS (netty) server needs these too
_NETTY_EXTRA = "".join(f":/usr/share/java/netty-{n}.jar" for n in ("codec", "resolver"))
_ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
_INSTALL_HINT = "apt-get install zookeeper"


class ZkError(ProcessError):
    """A ZooKeeper process did not start, stop or answer as expected."""


def find_zookeeper(jar: str | None = None) -> tuple[str, str]:
    """``(java, classpath)`` for a ZooKeeper server: ``jar`` or ``$ZOOKEEPER_JAR`` or Debian's."""
    path = jar or os.environ.get("ZOOKEEPER_JAR") or ZK_JAR
    java = shutil.which("java")
    if not Path(path).is_file() or java is None:
        raise FileNotFoundError(f"zk: no ZooKeeper jar at {path} or no java; {_INSTALL_HINT}")
    classpath = path + (f":{_SLF4J_SIMPLE}" if Path(_SLF4J_SIMPLE).is_file() else "")
    return java, classpath


def four_letter(port: int, word: str, timeout: float = 1.0) -> str:
    """The answer of a four-letter command (``ruok``, ``srvr``, ``mntr``); ``""`` on no answer."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(word.encode())
            chunks = []
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode(errors="replace")


class ZkServer(Closeable):
    """One ZooKeeper server on 127.0.0.1 (standalone, or a member of a :class:`ZkEnsemble`).

    Ports (client, quorum, election) are chosen free at construction and kept across restarts, as
    are the data directory and the log. ``tls``: a ``naming.testing.etcd.TlsFiles``; the server
    then also serves TLS on :attr:`secure_port` (and asks clients for a certificate). Not
    thread-safe.
    """

    host = HOST

    def __init__(
        self,
        *,
        name: str = "zk1",
        myid: int = 1,
        workdir: Path | None = None,
        tls: Any = None,
        tick_time: int = 200,
        min_session_timeout: float = 1.0,
        max_session_timeout: float = 60.0,
        jar: str | None = None,
        super_password: str | None = None,
    ) -> None:
        self.java, self.classpath = find_zookeeper(jar)
        self.super_password = super_password
        self.name = name
        self.myid = myid
        self.tls = tls
        self.tick_time = tick_time
        self.min_session_timeout = min_session_timeout
        self.max_session_timeout = max_session_timeout
        self.peers: list[ZkServer] | None = None  # set by ZkEnsemble
        self._process = ManagedProcess(
            self._command,
            healthy=self._serves,
            name=name,
            ports=4 if tls is not None else 3,  # client, quorum, election(, secure client)
            workdir=workdir,
            banner=lambda p: f"=== naming.testing.zookeeper: starting {name} on {self.endpoint}",
            component="zk",
        )
        self.workdir = self._process.workdir
        self.data_dir = self.workdir / f"{name}.data"
        self.log_path = self._process.log_path

    # -- addresses and state

    @property
    def port(self) -> int:
        return self._process.ports[0]

    @property
    def secure_port(self) -> int:
        if self.tls is None:
            raise ZkError(f"zk: {self.name} was made without tls")
        return self._process.ports[3]

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def super_auth(self) -> tuple[str, str] | None:
        """kazoo ``auth_data`` entry of the super user (every ACL passes), if one was set."""
        return None if self.super_password is None else ("digest", f"super:{self.super_password}")

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
    def process(self) -> ManagedProcess:
        return self._process

    def mode(self) -> str:
        """``standalone``, ``leader`` or ``follower`` from ``srvr``; ``""`` when not serving."""
        for line in four_letter(self.port, "srvr").splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return ""

    def __repr__(self) -> str:  # never the super password
        state = "paused" if self.paused else "running" if self.running else "stopped"
        return f"<ZkServer {self.name} {self.endpoint} {state} pid={self.pid}>"

    # -- life cycle

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> ZkServer:
        """Launch and return once the server serves clients (``srvr`` reports a mode)."""
        self._launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        try:
            self._process.wait_healthy(timeout)
        except ProcessError as exc:
            raise ZkError(f"zk: {self.name} did not serve {self.endpoint}: {exc}") from exc

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGTERM (after SIGCONT if paused) and wait; SIGKILL if it has not exited in ``timeout``."""
        self._process.stop(timeout)

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGKILL and wait for the process to be gone (its sessions live on in the ensemble)."""
        self._process.kill(timeout)

    def pause(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGSTOP: sockets stay open, nothing answers until :meth:`resume`."""
        self._process.pause(timeout)

    def resume(self) -> None:
        self._process.resume()

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> ZkServer:
        """Stop if running, then start again on the same ports and data."""
        self.stop(timeout)
        return self.start(timeout)

    def close(self) -> None:
        """Stop (kill if it will not stop), remove a workdir made here. Idempotent."""
        self._process.close()

    # -- logs

    @property
    def log_offset(self) -> int:
        return self._process.log_offset

    def log_tail(self, lines: int = 60, *, since: int = 0) -> str:
        return self._process.log_tail(lines, since=since)

    # -- internals

    def _launch(self) -> None:
        try:
            self._process.launch()
        except ProcessError as exc:
            raise ZkError(f"zk: {self.name} did not start: {exc}") from exc

    def _serves(self, process: ManagedProcess) -> bool:
        return self.mode() in ("standalone", "leader", "follower")

    def _config(self) -> str:
        ports = self._process.ports
        lines = [
            f"tickTime={self.tick_time}",
            "initLimit=50",
            "syncLimit=10",
            f"dataDir={self.data_dir}",
            f"clientPort={ports[0]}",
            f"clientPortAddress={HOST}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            f"minSessionTimeout={int(self.min_session_timeout * 1000)}",
            f"maxSessionTimeout={int(self.max_session_timeout * 1000)}",
            "autopurge.purgeInterval=0",
        ]
        if self.peers is not None:
            lines.append("standaloneEnabled=false")
            for peer in self.peers:
                q, e = peer._process.ports[1:3]
                lines.append(f"server.{peer.myid}={HOST}:{q}:{e}")
        if self.tls is not None:
            lines += [
                f"secureClientPort={ports[3]}",
                f"secureClientPortAddress={HOST}",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.workdir / 'server-keystore.pem'}",
                "ssl.keyStore.type=PEM",
                f"ssl.trustStore.location={self.tls.ca}",
                "ssl.trustStore.type=PEM",
                "ssl.hostnameVerification=false",
            ]
        return "\n".join(lines) + "\n"

    def _command(self, process: ManagedProcess) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{self.myid}\n")
        if self.tls is not None:
            keystore = _pkcs8(Path(self.tls.server_key)) + Path(self.tls.server_cert).read_bytes()
            (self.workdir / "server-keystore.pem").write_bytes(keystore)
        config = self.workdir / f"{self.name}.cfg"
        config.write_text(self._config())
        return [
            self.java,
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dzookeeper.jmx.log4j.disable=true",
            *self._super_flag(),
            "-cp",
            self.classpath + (_NETTY_EXTRA if self.tls is not None else ""),
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(config),
        ]

    def _super_flag(self) -> list[str]:
        if self.super_password is None:
            return []
        digest = hashlib.sha1(f"super:{self.super_password}".encode()).digest()
        encoded = base64.b64encode(digest).decode()
        return [f"-Dzookeeper.DigestAuthenticationProvider.superDigest=super:{encoded}"]


def _pkcs8(key_file: Path) -> bytes:
    """The private key as PKCS#8 PEM, the only form ZooKeeper's PEM key store reads."""
    from cryptography.hazmat.primitives import serialization  # with trustme, a test dependency

    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ZkEnsemble(Closeable):
    """``size`` ZooKeeper servers forming one ensemble on loopback; :attr:`members` in id order."""

    def __init__(self, size: int = 3, **server_options: Any) -> None:
        if size < 1:
            raise ValueError("zk: an ensemble needs at least one member")
        self.members = [
            ZkServer(name=f"zk{i}", myid=i, **server_options) for i in range(1, size + 1)
        ]
        for member in self.members:
            member.peers = self.members

    @property
    def hosts(self) -> str:
        """``host:port,...`` of every member: the authority of a ``zk://`` target."""
        return ",".join(m.endpoint for m in self.members)

    def start(self, timeout: float = DEFAULT_TIMEOUT * 3) -> ZkEnsemble:
        """Launch every member at once and return when all of them serve."""
        deadline = time.monotonic() + timeout
        for member in self.members:
            if not member.running:
                member._launch()
        for member in self.members:
            member.wait_ready(max(deadline - time.monotonic(), 0.1))
        return self

    def leader(self) -> ZkServer:
        """The member that says it leads; ZkError when none does."""
        for member in self.members:
            if member.running and not member.paused and member.mode() == "leader":
                return member
        raise ZkError("zk: no member of the ensemble is the leader")

    def close(self) -> None:
        for member in self.members:
            member.close()


def expire_session(hosts: str, client: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Expire the session of the kazoo ``client`` now (kazoo's harness trick).

    A second client joins the same session (its id and password) and closes it; the server then
    ends the session, its ephemeral nodes go, and ``client`` sees it expire (LOST).
    """
    from kazoo.client import KazooClient  # the zookeeper extra, needed only here

    session_id, password = client.client_id
    twin = KazooClient(
        hosts=hosts, client_id=(session_id, password), timeout=client._session_timeout / 1000
    )
    twin.start(timeout=timeout)
    try:
        twin.stop()
    finally:
        twin.close()


def zkcli(server: ZkServer, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run Debian's ``zkCli.sh -server ... args`` (one command) and return its result."""
    cmd = [_ZKCLI, "-server", server.endpoint, *args]
    env = {**os.environ, "CLASSPATH": f"{_SLF4J_SIMPLE}"}
    try:
        return subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise ZkError(f"zk: zkCli.sh {' '.join(args[:2])} did not finish in {timeout} s") from exc
