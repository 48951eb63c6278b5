"""A real DNS server for tests: dnsmasq (Debian's ``dnsmasq-base``) on a free 127.0.0.1 port.

It has no upstream and reads no system file (no /etc/hosts, no /etc/resolv.conf): every name it
knows comes from the files this harness writes, and any other name is NXDOMAIN::

    with DnsServer(ttl=2) as dns:
        dns.start()
        dns.set_hosts("hello.example.com", ["127.0.0.1", "::1"])   # re-read by dnsmasq itself
        dns.set_srv("_grpc._tcp.hello.example.com", [SrvRecord("hello.example.com", 50051)])
        dns.target("hello.example.com:50051")   # dns://127.0.0.1:PORT/hello.example.com:50051
        dns.pause(); dns.resume(); dns.stop(); dns.restart()

A and AAAA records live in a hosts directory that dnsmasq watches (``--hostsdir``): a change is
answered within a moment, without a restart. SRV records live in a config file that only a start
reads: :meth:`set_srv` restarts a running server. ``ttl`` is dnsmasq's ``--local-ttl``, the TTL of
every answer. The faults are :class:`ManagedProcess`'s: ``stop()``, ``restart()``, ``pause()``
(SIGSTOP: the socket stays open and nothing answers) and ``resume()``.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import secrets
import shutil
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .process import HOST, ManagedProcess, ProcessError

__all__ = ["DnsServer", "SrvRecord", "answers_udp", "find_dnsmasq"]

_SEARCH = ("/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq", "/sbin/dnsmasq")


def find_dnsmasq(path: str | None = None) -> str:
    """The dnsmasq binary: ``path``, ``$NAMING_DNSMASQ``, the PATH, or /usr/sbin (Debian's)."""
    for candidate in (path, os.environ.get("NAMING_DNSMASQ"), shutil.which("dnsmasq"), *_SEARCH):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ProcessError(
        "dns: dnsmasq not found; install Debian's dnsmasq-base (scripts/test does) "
        "or set NAMING_DNSMASQ"
    )


def answers_udp(port: int, timeout: float = 0.2) -> bool:
    """Does a DNS server on 127.0.0.1:``port`` answer a UDP query (any answer, NXDOMAIN too)?

    The health check asks over UDP, as the backend does: a TCP connection would make dnsmasq fork
    a child that keeps the UDP socket open past a restart, and then swallows the queries.
    """
    ident = secrets.randbelow(65536)
    question = b"".join(bytes([len(label)]) + label for label in (b"health", b"check")) + b"\0"
    packet = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (HOST, port))
            reply = sock.recv(512)
        except OSError:
            return False
    return len(reply) >= 12 and struct.unpack(">H", reply[:2])[0] == ident


@dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV record: the target host, its port, priority (lower first) and weight."""

    target: str
    port: int
    priority: int = 0
    weight: int = 1


class DnsServer(ManagedProcess):
    """dnsmasq answering from this harness's files only; see the module docstring."""

    def __init__(self, *, ttl: int = 2, binary: str | None = None, workdir: Path | None = None):
        self.ttl = ttl
        self._binary = find_dnsmasq(binary)
        self._hosts: dict[str, list[str]] = {}
        self._srv: dict[str, list[SrvRecord]] = {}
        super().__init__(
            self._command,
            healthy=lambda proc: answers_udp(proc.port),
            name="dnsmasq",
            workdir=workdir,
            component="dns",
        )
        self.hosts_dir = self.workdir / "hosts"
        self.hosts_dir.mkdir(exist_ok=True)
        self.config = self.workdir / "dnsmasq.conf"
        self.config.write_text("")

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the authority of a dns target that asks this server."""
        return f"{HOST}:{self.port}"

    def target(self, endpoint: str) -> str:
        """``dns://127.0.0.1:PORT/endpoint``."""
        return f"dns://{self.address}/{endpoint}"

    def set_hosts(self, name: str, ips: Iterable[str]) -> None:
        """Give ``name`` these A/AAAA addresses (none: the name goes away). dnsmasq re-reads it."""
        checked = [str(ipaddress.ip_address(ip)) for ip in ips]
        self._hosts[name] = checked
        path = self.hosts_dir / f"{name}.hosts"
        if not checked:
            path.unlink(missing_ok=True)
            self._hosts.pop(name)
            return
        scratch = self.workdir / f".{name}.hosts.tmp"
        scratch.write_text("".join(f"{ip} {name}\n" for ip in checked))
        os.replace(scratch, path)  # dnsmasq never reads half a file

    def set_srv(self, name: str, records: Sequence[SrvRecord]) -> None:
        """Give ``name`` these SRV records (none: it goes away); a running server is restarted."""
        if records:
            self._srv[name] = list(records)
        else:
            self._srv.pop(name, None)
        lines = [
            f"srv-host={srv_name},{r.target},{r.port},{r.priority},{r.weight}\n"
            for srv_name, found in self._srv.items()
            for r in found
        ]
        self.config.write_text("".join(lines))
        if self.running:
            self.restart()

    def _command(self, proc: ManagedProcess) -> list[str]:
        return [
            self._binary,
            "--keep-in-foreground",
            f"--port={self.port}",
            f"--listen-address={HOST}",
            "--bind-interfaces",
            "--no-resolv",  # no upstream: /etc/resolv.conf is not read
            "--no-hosts",  # nor /etc/hosts
            "--no-poll",
            "--local=/#/",  # every name is local: an unknown one is NXDOMAIN, never forwarded
            f"--hostsdir={self.hosts_dir}",
            f"--conf-file={self.config}",
            f"--local-ttl={self.ttl}",
            "--log-facility=-",
            "--pid-file=",
            f"--user={pwd.getpwuid(os.getuid()).pw_name}",
            "--cache-size=0",
            "--edns-packet-max=4096",  # a big answer fits one UDP reply
        ]
