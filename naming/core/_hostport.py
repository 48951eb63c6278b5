"""Checking ``host:port`` strings, the form every backend hands to gRPC."""

from __future__ import annotations

import ipaddress

__all__ = ["split_host_port"]


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 in brackets) into host and port; ValueError says what is wrong."""
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
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"address {text!r}: port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)
