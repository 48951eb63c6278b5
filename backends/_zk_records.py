"""The data of an instance node: ours, a bare ``host:port``, and Apache Curator's instances.

* ours: ``{"addr": "host:port", "metadata": {...}}`` (the kit's ``encode_record``);
* a bare ``host:port`` (as text or a JSON string);
* Curator service discovery (``curator-x-discovery``'s ``JsonInstanceSerializer``), under
  ``{basePath}/{name}/{id}``::

    {"name":"demo","id":"inst-1","address":"10.0.0.1","port":8080,"sslPort":null,
     "payload":{"@class":"java.util.LinkedHashMap","region":"eu"},
     "registrationTimeUTC":1796154187867,"serviceType":"DYNAMIC","uriSpec":null}

  The address is ``address:port``; ``port`` may be a number or a numeric string, and when it is
  null the ``sslPort`` is taken (a TLS-only instance). A payload that is a JSON object becomes the
  metadata, without Jackson's ``@class`` type tag; any other payload is left out. An instance with
  ``"enabled": false`` is skipped, as Curator's service provider skips it; a missing ``enabled``
  means enabled. Unknown fields are ignored, as Curator ignores them.

``encode_curator`` writes an instance Curator's ``queryForInstances`` reads: the fields in
Curator's order, compact, ``serviceType`` ``DYNAMIC`` (an ephemeral node owned by the
registering session), the metadata as a ``java.util.LinkedHashMap`` payload (null without
metadata), ``registrationTimeUTC`` in epoch milliseconds and ``sslPort`` and ``uriSpec`` null.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from naming.core import Address, RecordCodec, encode_record, record_address, split_host_port

__all__ = ["CODEC", "decode_curator", "encode", "encode_curator"]

_JAVA_MAP = "java.util.LinkedHashMap"


def _port(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("curator record: the port is a boolean")
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"curator record: bad port {value!r}")
    return value


def decode_curator(data: dict[str, Any]) -> Address:
    """A Curator ``ServiceInstance``: ``address:port`` (or ``sslPort``) and its payload map."""
    if data.get("enabled", True) is False:
        raise ValueError("curator record: the instance is disabled (enabled=false)")
    host = data["address"]
    if not isinstance(host, str) or not host:
        raise ValueError("curator record: 'address' is not a host name")
    port = data.get("port")
    port = data.get("sslPort") if port is None else port
    if port is None:
        raise ValueError("curator record: neither port nor sslPort")
    port = _port(port)
    metadata = None
    payload = data.get("payload")
    if isinstance(payload, dict):
        metadata = {k: v for k, v in payload.items() if k != "@class"} or None
    addr = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    return record_address(addr, metadata)


CODEC = RecordCodec().with_format("address", decode_curator)


def encode_curator(
    address: Address, *, name: str, instance_id: str, clock: Callable[[], float] = time.time
) -> str:
    """The Curator instance for ``address`` (see the module docstring)."""
    host, port = split_host_port(address.addr)
    payload: dict[str, Any] | None = None
    if address.metadata is not None:
        payload = {"@class": _JAVA_MAP, **address.metadata.thaw()}
    record = {
        "name": name,
        "id": instance_id,
        "address": host.strip("[]"),
        "port": int(port),
        "sslPort": None,
        "payload": payload,
        "registrationTimeUTC": int(clock() * 1000),
        "serviceType": "DYNAMIC",
        "uriSpec": None,
    }
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def encode(address: Address, record_format: str, *, name: str, instance_id: str) -> bytes:
    """The node data for ``address`` in ``record_format`` (``json``, ours, or ``curator``)."""
    if record_format == "curator":
        return encode_curator(address, name=name, instance_id=instance_id).encode()
    return encode_record(address).encode()
