"""The values stored under an etcd key: ours, and those of go-zero/grpc-lb, etcd and kratos.

* ours: ``{"addr": "host:port", "metadata": {...}}`` (metadata optional)
* go-zero and grpc-lb: ``host:port`` (also accepted as a JSON string, ``"host:port"``)
* etcd's endpoints manager (``go.etcd.io/etcd/client/v3/naming/endpoints``):
  ``{"Op": 0, "Addr": "host:port", "Metadata": ...}``; a metadata value that is not an object is kept
  as ``{"value": ...}``.
* kratos (``contrib/registry/etcd``): ``{"id", "name", "version", "metadata", "endpoints":
  ["grpc://host:port?isSecure=false", "http://host:port", ...]}``. The first ``grpc://`` or
  ``grpcs://`` endpoint is the address, as kratos's own gRPC resolver takes it: one instance, one
  address. The metadata is the record's ``metadata`` object, with ``version`` added when the record
  has one and the metadata has no ``version`` key of its own.

A value holding both ``addr`` and ``Addr`` is read as ours: ``addr`` wins, wherever it stands. (Go's
``encoding/json``, which the endpoints package reads with, matches keys case-insensitively and takes
the last one in the text; records written by one tool hold only one of the two.)

The first two are the kit's (``naming.core.RecordCodec``); the others are plugged into it here. A
snapshot (``decode_snapshot``) reads thousands of values at once through the kit's fast path for our
own records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from naming.core import Address, RecordCodec, encode_record, record_address

__all__ = [
    "CODEC",
    "decode_endpoints_manager",
    "decode_kratos",
    "decode_record",
    "decode_snapshot",
    "encode_record",
]

_GRPC_SCHEMES = frozenset({"grpc", "grpcs"})


def decode_endpoints_manager(data: dict[str, Any]) -> Address:
    """An endpoints-manager update (``{"Op", "Addr", "Metadata"}``) that adds an endpoint."""
    op = data.get("Op", 0)
    if op != 0:
        raise ValueError(f"endpoints-manager record with Op={op!r}, not an add")
    metadata = data.get("Metadata")
    if metadata is not None and not isinstance(metadata, dict):
        metadata = {"value": metadata}
    return record_address(data["Addr"], metadata)


def decode_kratos(data: dict[str, Any]) -> Address:
    """A kratos ServiceInstance: its first ``grpc://``/``grpcs://`` endpoint and its metadata."""
    endpoints = data["endpoints"]
    if not isinstance(endpoints, list):
        raise ValueError("kratos record: 'endpoints' is not a list")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError("kratos record: 'metadata' is not a JSON object")
    version = data.get("version")
    if version and "version" not in (metadata or {}):
        metadata = {**(metadata or {}), "version": version}
    for endpoint in endpoints:
        if not isinstance(endpoint, str):
            continue
        parts = urlsplit(endpoint)
        if parts.scheme in _GRPC_SCHEMES:
            return record_address(parts.netloc, metadata or None)
    raise ValueError("kratos record without a grpc:// endpoint")


CODEC = (
    RecordCodec()
    .with_format("Addr", decode_endpoints_manager)
    .with_format("endpoints", decode_kratos)
)


def decode_record(value: bytes) -> Address:
    """Decode one stored value; ValueError says why it is not a record."""
    return CODEC.decode(value)


def decode_snapshot(
    kvs: Iterable[Any], skip: Callable[[bytes, ValueError], None]
) -> dict[bytes, Address]:
    """Decode etcd key-values (``.key``, ``.value``): {key: address}; ``skip(key, error)`` for the
    values that are not records. See ``RecordCodec.decode_many``."""
    return CODEC.decode_many(((kv.key, kv.value) for kv in kvs), skip)
