"""The values stored under an etcd key: ours, go-zero/grpc-lb's bare ``host:port``, and etcd's own.

* ours: ``{"addr": "host:port", "metadata": {...}}`` (metadata optional)
* go-zero and grpc-lb: ``host:port`` (also accepted as a JSON string, ``"host:port"``)
* etcd's endpoints manager (``go.etcd.io/etcd/client/v3/naming/endpoints``):
  ``{"Op": 0, "Addr": "host:port", "Metadata": ...}``; a metadata value that is not an object is kept
  as ``{"value": ...}``.

A snapshot (``decode_snapshot``) reads thousands of values at once, so it reads the ones written by
``encode_record`` with one regular expression, and parses each distinct metadata text only once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from naming.core import Address, FrozenMap, split_host_port

__all__ = ["decode_record", "decode_snapshot", "encode_record"]

# json.loads() wraps this C scanner in two layers of Python that cost more than the scan itself on
# records this small. Shared like json's own default decoder.
_scan: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

# encode_record()'s output for a DNS name or IPv4 host and a port from 1 to 65535, without leading
# zeros: the address needs no JSON escape and passes split_host_port() as it stands. The metadata
# text (group 2) is used only if it parses on its own, to its last character, as a JSON object.
_PORT = rb"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_OURS = re.compile(
    rb'\{"addr":"([A-Za-z0-9._-]+:' + _PORT + rb')"(?:,"metadata":(\{.*\}))?\}', re.DOTALL
)


def encode_record(address: Address) -> str:
    """The JSON value we store for ``address``."""
    record: dict[str, Any] = {"addr": address.addr}
    if address.metadata is not None:
        record["metadata"] = address.metadata.thaw()
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def decode_snapshot(
    kvs: Iterable[Any], skip: Callable[[bytes, ValueError], None]
) -> dict[bytes, Address]:
    """Decode etcd key-values (``.key``, ``.value``): {key: address}; ``skip(key, error)`` for the
    values that are not records. The same as ``decode_record`` on each value, several times faster
    on our own records: a match instead of a JSON parse, and metadata frozen once per distinct text
    and shared by the addresses (10,000 records in a few zones make a few FrozenMaps).
    """
    records: dict[bytes, Address] = {}
    shared: dict[bytes, FrozenMap] = {}
    match = _OURS.fullmatch
    for kv in kvs:
        value = kv.value
        found = match(value)
        try:
            if found is None:
                records[kv.key] = decode_record(value)
                continue
            addr, source = found.groups()
            if source is None:
                records[kv.key] = Address(addr.decode())
                continue
            metadata = shared.get(source)
            if metadata is None:
                metadata = _metadata(source)
                if metadata is None:  # not an object on its own: the general path says what it is
                    records[kv.key] = decode_record(value)
                    continue
                shared[source] = metadata
            records[kv.key] = Address(addr.decode(), metadata)
        except ValueError as exc:
            skip(kv.key, exc)
    return records


def _metadata(source: bytes) -> FrozenMap | None:
    """The JSON object that ``source`` holds from its first character to its last, or None."""
    try:
        text = source.decode("utf-8")
        data, end = _scan(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError):
        return None
    return FrozenMap(data) if type(data) is dict and end == len(text) else None


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
    try:  # json.loads(text), without its two layers of Python
        data, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("the value is not valid JSON (Expecting value)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the value is not valid JSON ({exc.msg})") from None
    if end != len(text):
        raise ValueError("the value is not valid JSON (Extra data)")
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


def _checked(addr: object, metadata: Mapping[str, Any] | None) -> Address:
    if not isinstance(addr, str):
        raise ValueError(f"the address is a {type(addr).__name__}, not a string")
    split_host_port(addr)
    try:
        return Address(addr, metadata)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
