"""The values stored under an etcd key: ours, go-zero/grpc-lb's bare ``host:port``, and etcd's own.

* ours: ``{"addr": "host:port", "metadata": {...}}`` (metadata optional)
* go-zero and grpc-lb: ``host:port`` (also accepted as a JSON string, ``"host:port"``)
* etcd's endpoints manager (``go.etcd.io/etcd/client/v3/naming/endpoints``):
  ``{"Op": 0, "Addr": "host:port", "Metadata": ...}``; a metadata value that is not an object is kept
  as ``{"value": ...}``.

The first two are the kit's (``naming.core.RecordCodec``); the endpoints manager's is plugged into
it here. A snapshot (``decode_snapshot``) reads thousands of values at once through the kit's fast
path for our own records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from naming.core import Address, RecordCodec, encode_record, record_address

__all__ = ["CODEC", "decode_endpoints_manager", "decode_record", "decode_snapshot", "encode_record"]


def decode_endpoints_manager(data: dict[str, Any]) -> Address:
    """An endpoints-manager update (``{"Op", "Addr", "Metadata"}``) that adds an endpoint."""
    if data.get("Op", 0) != 0:
        raise ValueError(f"endpoints-manager record with Op={data.get('Op')!r}, not an add")
    metadata = data.get("Metadata")
    if metadata is not None and not isinstance(metadata, dict):
        metadata = {"value": metadata}
    return record_address(data["Addr"], metadata)


CODEC = RecordCodec().with_format("Addr", decode_endpoints_manager)


def decode_record(value: bytes) -> Address:
    """Decode one stored value; ValueError says why it is not a record."""
    return CODEC.decode(value)


def decode_snapshot(
    kvs: Iterable[Any], skip: Callable[[bytes, ValueError], None]
) -> dict[bytes, Address]:
    """Decode etcd key-values (``.key``, ``.value``): {key: address}; ``skip(key, error)`` for the
    values that are not records. See ``RecordCodec.decode_many``."""
    return CODEC.decode_many(((kv.key, kv.value) for kv in kvs), skip)
