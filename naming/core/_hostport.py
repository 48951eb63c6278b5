"""Checking ``host:port`` strings, the form every backend hands to gRPC."""

from __future__ import annotations

import ipaddress
import re

__all__ = ["BIND_ALL_HOSTS", "is_bind_all", "split_host_port"]

# DNS labels (underscores allowed, as in SRV-style names), or a dotted IPv4 address: ASCII only.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")

BIND_ALL_HOSTS = frozenset({"0.0.0.0", "::", "[::]", ""})


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets) into host and port; ValueError says what is wrong.

    The host is a DNS name (ASCII labels), an IPv4 address, or an IPv6 address in brackets; the
    port is ASCII digits from 1 to 65535. Whitespace anywhere is refused.
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"address {text!r} is empty")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"address {text!r} has no closing ']'")
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"address {text!r}: {host!r} is not an IPv6 address") from None
        if not rest.startswith(":"):
            raise ValueError(f"address {text!r} has no port")
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError(f"address {text!r} has no port")
        if not host:
            raise ValueError(f"address {text!r} has no host")
        if ":" in host:
            raise ValueError(f"address {text!r}: write an IPv6 host in brackets, [{host}]:port")
        if len(host) > 253 or not _HOSTNAME.fullmatch(host):
            raise ValueError(f"address {text!r}: {host!r} is not a host name or IP address")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {text!r}: port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def is_bind_all(host: str) -> bool:
    """True for the hosts a server listens on to mean "every interface": 0.0.0.0, ::, [::]."""
    return host in BIND_ALL_HOSTS
