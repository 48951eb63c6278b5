"""What ``register()`` checks before a backend sees anything: the address, the ttl, the metadata.

A record that a resolver would skip (no port, port 0, a space, a non-ASCII digit) is refused here,
with a message naming what is wrong, instead of being published and silently never found. So is a
bind-all host (``0.0.0.0``, ``[::]``): no client can dial it. ``bind_all="host"`` replaces it with
this machine's address, as go-zero does for a server that listens on every interface.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from ._hostport import is_bind_all, split_host_port
from ._types import Address

__all__ = ["MAX_TTL", "MIN_TTL", "checked_ttl", "host_address", "registrable"]

MIN_TTL = 1.0  # below this a keepalive every ttl/3 is a busy loop, and etcd raises it anyway
MAX_TTL = 86_400.0  # a day: longer, and a dead server stays listed for longer than anyone wants
BIND_ALL_CHOICES = ("refuse", "host")
HOST_ENV = ("NAMING_HOST_IP", "POD_IP")  # where a deployment says which address is this host's


def checked_ttl(ttl: object) -> float:
    """``ttl`` as a float, or ValueError naming the bounds."""
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or not MIN_TTL <= ttl <= MAX_TTL
    ):
        raise ValueError(
            f"register: ttl must be a positive number of seconds, from {MIN_TTL:g} to "
            f"{MAX_TTL:g}; got {ttl!r}"
        )
    return float(ttl)


def host_address(
    environ: Mapping[str, str] = os.environ,
    lookup: Callable[..., Any] = socket.getaddrinfo,
    hostname: Callable[[], str] = socket.gethostname,
) -> str:
    """This machine's address for clients: ``NAMING_HOST_IP`` or ``POD_IP`` if set, else the first
    address of the host name that is not a loopback one. ValueError when there is none."""
    for name in HOST_ENV:
        value = environ.get(name, "").strip()
        if value:
            return value
    try:
        infos = lookup(hostname(), None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(
            f"register: cannot find this host's address ({exc}); set NAMING_HOST_IP"
        ) from None
    for family, _, _, _, sockaddr in infos:
        host = str(sockaddr[0])
        if not host.startswith("127.") and host != "::1":
            return f"[{host}]" if family == socket.AF_INET6 else host
    raise ValueError("register: this host has only loopback addresses; set NAMING_HOST_IP")


def registrable(
    address: Address,
    scheme: str,
    bind_all: str = "refuse",
    host: Callable[[], str] = host_address,
) -> Address:
    """``address`` checked for publishing (a bind-all host replaced when ``bind_all="host"``).

    ValueError names what is wrong with the address; TypeError or ValueError, prefixed with
    ``scheme``, says which metadata is not JSON (every registry stores records as JSON).
    """
    if bind_all not in BIND_ALL_CHOICES:
        raise ValueError(f"register: bind_all must be one of {BIND_ALL_CHOICES}, got {bind_all!r}")
    addr = address.addr
    if addr.startswith(":"):  # ":50051", as servers often write their listen address
        addr = f"0.0.0.0{addr}"
    try:
        hostname, port = split_host_port(addr)
    except ValueError as exc:
        raise ValueError(f"register: {address.addr!r} cannot be registered: {exc}") from None
    if is_bind_all(hostname):
        if bind_all == "refuse":
            raise ValueError(
                f"register: {address.addr!r} is a bind-all address that no client can dial; "
                "register the address clients should use, or pass bind_all='host' to use this "
                "host's address"
            )
        addr = f"{host()}:{port}"
        try:
            split_host_port(addr)
        except ValueError as exc:
            raise ValueError(f"register: this host's address is not usable: {exc}") from None
    if address.metadata is not None:
        try:
            json.dumps(address.metadata.thaw(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{scheme}: metadata of {address.addr!r} is not JSON: {exc}") from None
    return address if addr == address.addr else Address(addr, address.metadata)
