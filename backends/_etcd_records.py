"""The values stored under an etcd key: ours, go-zero/grpc-lb's bare ``host:port``, and etcd's own.

* ours: ``{"addr": "host:port", "metadata": {...}}`` (metadata optional)
* go-zero and grpc-lb: ``host:port`` (also accepted as a JSON string, ``"host:port"``)
* etcd's endpoints manager (``go.etcd.io/etcd/client/v3/naming/endpoints``):
  ``{"Op": 0, "Addr": "host:port", "Metadata": ...}``; a metadata value that is not an object is kept
  as ``{"value": ...}``.
"""

from __future__ import annotations

import json
from typing import Any

from naming import Address
from naming._hostport import split_host_port

__all__ = ["decode_record", "encode_record"]


def encode_record(address: Address) -> str:
    """The JSON value we store for ``address``."""
    record: dict[str, Any] = {"addr": address.addr}
    if address.metadata is not None:
        record["metadata"] = address.metadata.thaw()
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def decode_record(value: bytes) -> Address:
    """Decode one stored value; ValueError says why it is not a record."""
    try:
        text = value.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("the value is not UTF-8") from None
    if not text:
        raise ValueError("the value is empty")
    if text[0] == "[":  # an IPv6 address, or a JSON array
        try:
            return _checked(text, None)
        except ValueError:
            pass
    elif text[0] not in '{"':
        return _checked(text, None)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the value is not valid JSON ({exc.msg})") from None
    if isinstance(data, str):
        return _checked(data, None)
    if not isinstance(data, dict):
        raise ValueError(f"the JSON value is a {type(data).__name__}, not an object")
    if "addr" in data:
        metadata = data.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError("'metadata' is not a JSON object")
        return _checked(data["addr"], metadata)
    if "Addr" in data:
        if data.get("Op", 0) != 0:
            raise ValueError(f"endpoints-manager record with Op={data.get('Op')!r}, not an add")
        metadata = data.get("Metadata")
        if metadata is not None and not isinstance(metadata, dict):
            metadata = {"value": metadata}
        return _checked(data["Addr"], metadata)
    raise ValueError("the JSON object has neither 'addr' nor 'Addr'")


def _checked(addr: object, metadata: dict[str, Any] | None) -> Address:
    if not isinstance(addr, str):
        raise ValueError(f"the address is a {type(addr).__name__}, not a string")
    split_host_port(addr)
    try:
        return Address(addr, metadata)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
