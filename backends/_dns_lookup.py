"""DNS lookups for the dns backend: the system resolver, or a named server through dnspython.

Every lookup returns a :class:`Answer` (the addresses, in a stable order, and the smallest TTL, or
None when the answer carries none) or raises: :class:`NameNotFound` for NXDOMAIN and for an empty
answer (the name is there but has no record of the kind asked), BackendUnavailableError for what
may pass (a timeout, SERVFAIL, a refusal, a server that cannot be reached).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from naming.core import Address, BackendUnavailableError, NamingError, split_host_port

__all__ = ["Answer", "DnspythonLookup", "NameNotFound", "SystemLookup", "format_address"]

DNS_PORT = 53


class NameNotFound(NamingError):
    """NXDOMAIN, or an answer with no record: reported, and the set emptied only after a grace."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The addresses of one lookup, in a stable order, and the smallest TTL (None: no TTL)."""

    addresses: list[Address]
    ttl: float | None


def format_address(ip: str, port: int, metadata: dict[str, Any] | None = None) -> Address:
    """``ip:port``, IPv6 in brackets, as grpcio dials it."""
    host = f"[{ip}]" if ":" in ip else ip
    return Address(f"{host}:{port}", metadata)


def _ordered(ips: Iterable[str]) -> list[str]:
    """IPv6 first, then IPv4, each sorted: a DNS server's rotation does not reorder the set."""
    unique = {ipaddress.ip_address(ip) for ip in ips}
    return [str(ip) for ip in sorted(unique, key=lambda ip: (ip.version == 4, ip))]


class SystemLookup:
    """``getaddrinfo``: /etc/hosts, nsswitch and the system's DNS, as grpc-go's net.LookupHost.

    The order is the system's (RFC 6724), duplicates removed. There is no TTL.
    """

    def addresses(self, host: str, port: int) -> Answer:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                raise NameNotFound(f"dns: {host}: no such host (NXDOMAIN or no address)") from exc
            raise BackendUnavailableError(f"dns: {host}: lookup failed: {exc}") from exc
        ips = dict.fromkeys(str(info[4][0]) for info in infos)
        if not ips:
            raise NameNotFound(f"dns: {host}: no address")
        return Answer([format_address(ip, port) for ip in ips], None)

    def close(self) -> None:
        """Nothing to release."""


class DnspythonLookup:
    """Queries through dnspython: one named server (``server`` as ``host[:port]``), or the system's
    configured servers (/etc/resolv.conf) when ``server`` is empty (SRV needs dnspython)."""

    def __init__(self, server: str, timeout: float) -> None:
        import dns.resolver  # the dns extra: imported only when a lookup needs it

        self._timeout = timeout
        if server:
            self._resolver = dns.resolver.Resolver(configure=False)
            ip, port = _server_address(server)
            self._resolver.nameservers = [ip]
            self._resolver.port = port
            self.server = f"{ip}:{port}" if ":" not in ip else f"[{ip}]:{port}"
        else:
            self._resolver = dns.resolver.Resolver()
            self.server = "the system's DNS servers"
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._resolver.use_edns(0, 0, 4096)  # big answers in one UDP reply, not a TCP retry

    def query(self, name: str, rdtype: str) -> Any:
        """The dnspython answer (``rrset`` None when empty); NameNotFound on NXDOMAIN."""
        import dns.exception
        import dns.resolver

        try:
            return self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            raise NameNotFound(f"dns: {name}: NXDOMAIN from {self.server}") from exc
        except dns.resolver.NoNameservers as exc:  # SERVFAIL, REFUSED and the like
            raise BackendUnavailableError(
                f"dns: {name} {rdtype}: {self.server} did not answer (SERVFAIL or refused)"
            ) from exc
        except dns.exception.Timeout as exc:
            raise BackendUnavailableError(
                f"dns: {name} {rdtype}: {self.server} timed out after {self._timeout:g} s"
            ) from exc
        except dns.exception.DNSException as exc:
            raise BackendUnavailableError(f"dns: {name} {rdtype}: {self.server}: {exc}") from exc
        except OSError as exc:  # refused (ICMP port unreachable), no route: the server may return
            raise BackendUnavailableError(
                f"dns: {name} {rdtype}: {self.server} cannot be reached: {exc}"
            ) from exc

    def addresses(self, host: str, port: int) -> Answer:
        ips, ttl = self.ips(host, missing_ok=False)
        if not ips:
            raise NameNotFound(f"dns: {host}: no A or AAAA record at {self.server}")
        return Answer([format_address(ip, port) for ip in ips], ttl)

    def ips(
        self, host: str, additional: Any = None, *, missing_ok: bool = True
    ) -> tuple[list[str], float | None]:
        """The A and AAAA addresses of ``host`` and their smallest TTL; an empty list when none.

        ``additional`` is a response's additional section: records found there are not asked for.
        NXDOMAIN gives an empty list, or NameNotFound without ``missing_ok``.
        """
        ips: list[str] = []
        ttls: list[float] = []
        for rdtype in ("AAAA", "A"):
            rrset = _find(additional, host, rdtype)
            if rrset is None:
                try:
                    rrset = self.query(host, rdtype).rrset
                except NameNotFound:
                    if not missing_ok:
                        raise
                    return [], None
            if rrset is not None:
                ips.extend(rr.address for rr in rrset)
                ttls.append(float(rrset.ttl))
        return _ordered(ips), min(ttls) if ttls else None

    def srv(self, name: str) -> Answer:
        """SRV: the lowest priority group with an address; each record's weight becomes metadata
        ``weight`` (none when every record of the group has the same weight)."""
        answer = self.query(name, "SRV")
        if answer.rrset is None or not len(answer.rrset):
            raise NameNotFound(f"dns: {name}: no SRV record at {self.server}")
        ttls = [float(answer.rrset.ttl)]
        groups: dict[int, list[Any]] = {}
        for rr in answer.rrset:
            groups.setdefault(int(rr.priority), []).append(rr)
        additional = answer.response.additional
        for priority in sorted(groups):
            addresses: list[Address] = []
            records = sorted(groups[priority], key=lambda rr: (str(rr.target), rr.port))
            # weights that are all equal say nothing: the addresses then carry no metadata
            weighted = len({int(rr.weight) for rr in records}) > 1
            for rr in records:
                host = str(rr.target)
                ips, ttl = self.ips(host, additional)
                if ttl is not None:
                    ttls.append(ttl)
                meta = {"weight": int(rr.weight)} if weighted else None
                addresses.extend(format_address(ip, int(rr.port), meta) for ip in ips)
            if addresses:
                return Answer(list(dict.fromkeys(addresses)), min(ttls))
        raise NameNotFound(f"dns: {name}: no SRV target has an address at {self.server}")

    def close(self) -> None:
        """Nothing to release: dnspython opens a socket per query."""


def _find(section: Any, host: str, rdtype: str) -> Any:
    if not section:
        return None
    import dns.name
    import dns.rdatatype

    wanted_name = dns.name.from_text(host)
    wanted_type = dns.rdatatype.from_text(rdtype)
    for rrset in section:
        if rrset.name == wanted_name and rrset.rdtype == wanted_type:
            return rrset
    return None


def _server_address(server: str) -> tuple[str, int]:
    """A DNS server's ``ip[:port]`` (port 53 by default); a name is looked up once, here."""
    try:
        host, port = split_host_port(server)
    except ValueError:
        host, port = server, DNS_PORT
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise BackendUnavailableError(
            f"dns: the DNS server {server!r} cannot be found: {exc}"
        ) from exc
    return str(infos[0][4][0]), port
