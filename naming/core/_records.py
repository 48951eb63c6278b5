"""The record codec: the value a registry holds for one server, to and from an Address.

Ours is ``{"addr": "host:port", "metadata": {...}}`` (metadata optional), written by
``encode_record``. ``RecordCodec.decode`` also reads a bare ``host:port`` (also as a JSON string,
``"host:port"``), the form go-zero and grpc-lb write, and any foreign JSON object a backend plugs in
as a ``RecordFormat``: the object's distinguishing key and a function from the parsed object to an
Address. Adding one is one line::

    CODEC = RecordCodec().with_format("Addr", decode_endpoints_manager)

A value that is not a record raises ValueError saying why, and nothing else, whatever the bytes:
JSON nested more than 64 levels deep is refused (it would exhaust Python's recursion limit in the
parser or in the metadata's freezing), and an exception other than ValueError from a plugged
format's decoder becomes a ValueError. ``RecordSkipper`` turns that into "skip the key, with one
warning, until it holds a record again". ``decode_many`` reads thousands of values at once (a
snapshot): it matches the values ``encode_record`` writes with one regular expression and freezes
each distinct metadata text once.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._hostport import split_host_port
from ._types import Address, FrozenMap

__all__ = [
    "RecordCodec",
    "RecordDecoder",
    "RecordFormat",
    "RecordSkipper",
    "encode_record",
    "record_address",
]

log = logging.getLogger("naming.records")

K = TypeVar("K", bound=Hashable)

RecordDecoder = Callable[[dict[str, Any]], Address]
"""A foreign format's decoder: the parsed JSON object in, an Address out, ValueError if bad."""

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

# How deeply a record's JSON may nest (the record object is level 1, its metadata level 2). Real
# metadata is a few levels deep; Python's parser and FrozenMap recurse once or more per level.
_MAX_DEPTH = 64
_TOO_DEEP = f"the value is nested more than {_MAX_DEPTH} levels deep"
# A skipped value is quoted in the warning only up to this many characters.
_SHOWN = 200


def encode_record(address: Address) -> str:
    """Our JSON value for ``address``: compact, keys sorted; ``decode`` gives the address back."""
    record: dict[str, Any] = {"addr": address.addr}
    if address.metadata is not None:
        record["metadata"] = address.metadata.thaw()
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def record_address(addr: object, metadata: Mapping[str, Any] | None = None) -> Address:
    """An Address from a record's parts; ValueError when ``addr`` is not a ``host:port`` string or
    the metadata cannot be frozen. For decoders of foreign formats."""
    if not isinstance(addr, str):
        raise ValueError(f"the address is a {type(addr).__name__}, not a string")
    split_host_port(addr)
    try:
        return Address(addr, metadata)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    except RecursionError:
        raise ValueError("the metadata is nested too deeply") from None


@dataclass(frozen=True)
class RecordFormat:
    """A foreign JSON record format: objects that hold ``key`` are read by ``decode``."""

    key: str
    decode: RecordDecoder


class RecordCodec:
    """Decodes our records, bare ``host:port`` and the foreign formats given; immutable.

    Our ``"addr"`` key is tried first, then each format's key in order; the first one present
    decides (so ``{"addr": ..., "Addr": ...}`` is ours). ``with_format`` returns a new codec with
    one more format. A format's decoder gets JSON nested at most 64 levels deep; whatever it raises
    reaches the caller as a ValueError.
    """

    def __init__(self, formats: Iterable[RecordFormat] = ()) -> None:
        self.formats: tuple[RecordFormat, ...] = tuple(formats)
        keys = ["addr", *(f.key for f in self.formats)]
        if len(set(keys)) != len(keys):
            raise ValueError(f"records: two formats share a key: {keys}")
        self._keys = " nor ".join(map(repr, keys))
        self._neither = "neither " if len(keys) > 1 else "no "

    def with_format(self, key: str, decode: RecordDecoder) -> RecordCodec:
        """A codec that also reads JSON objects holding ``key``, with ``decode``."""
        return RecordCodec((*self.formats, RecordFormat(key, decode)))

    def __repr__(self) -> str:
        return (
            f"<RecordCodec addr, {', '.join(f.key for f in self.formats) or 'no foreign format'}>"
        )

    def decode(self, value: bytes | str) -> Address:
        """Decode one stored value; ValueError says why it is not a record."""
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError("the value is not UTF-8") from None
        text = value.strip()
        if not text:
            raise ValueError("the value is empty")
        if text[0] == "[":  # an IPv6 address, or a JSON array
            try:
                return record_address(text)
            except ValueError:
                pass
        elif text[0] not in '{"':
            return record_address(text)
        try:  # json.loads(text), without its two layers of Python
            data, end = _scan(text, 0)
        except StopIteration:
            raise ValueError("the value is not valid JSON (Expecting value)") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"the value is not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ValueError(_TOO_DEEP) from None
        if end != len(text):
            raise ValueError("the value is not valid JSON (Extra data)")
        if type(data) in _CONTAINERS and _deeper_than(data, _MAX_DEPTH):
            raise ValueError(_TOO_DEEP)
        if isinstance(data, str):
            return record_address(data)
        if not isinstance(data, dict):
            raise ValueError(f"the JSON value is a {type(data).__name__}, not an object")
        if "addr" in data:
            metadata = data.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                raise ValueError("'metadata' is not a JSON object")
            return record_address(data["addr"], metadata)
        for form in self.formats:
            if form.key in data:
                try:
                    return form.decode(data)
                except ValueError:
                    raise
                except Exception as exc:  # a decoder surprised by the JSON it got: not a record
                    raise ValueError(
                        f"the {form.key!r} record cannot be read: {type(exc).__name__}: {exc}"
                    ) from None
        raise ValueError(f"the JSON object has {self._neither}{self._keys}")

    def decode_many(
        self, items: Iterable[tuple[K, bytes]], skip: Callable[[K, ValueError], None]
    ) -> dict[K, Address]:
        """Decode ``(key, value)`` pairs: {key: address}, ``skip(key, error)`` for the values that
        are not records. The same as ``decode`` on each value, several times faster on our own
        records: a match instead of a JSON parse, and metadata frozen once per distinct text and
        shared by the addresses (10,000 records in a few zones make a few FrozenMaps).
        """
        records: dict[K, Address] = {}
        shared: dict[bytes, FrozenMap] = {}
        match = _OURS.fullmatch
        for key, value in items:
            found = match(value)
            try:
                if found is None:
                    records[key] = self.decode(value)
                    continue
                addr, source = found.groups()
                if source is None:
                    records[key] = Address(addr.decode())
                    continue
                metadata = shared.get(source)
                if metadata is None:
                    metadata = _metadata(source)
                    if metadata is None:  # not an object on its own: decode() says what it is
                        records[key] = self.decode(value)
                        continue
                    shared[source] = metadata
                records[key] = Address(addr.decode(), metadata)
            except ValueError as exc:
                skip(key, exc)
        return records


def _metadata(source: bytes) -> FrozenMap | None:
    """The JSON object that ``source`` holds from its first character to its last, or None (also
    when it nests too deeply: ``decode()`` then says so)."""
    try:
        text = source.decode("utf-8")
        data, end = _scan(text, 0)
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return None
    if type(data) is not dict or end != len(text) or _deeper_than(data, _MAX_DEPTH - 1):
        return None
    return FrozenMap(data)


_CONTAINERS = (dict, list)


def _deeper_than(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """True when parsed JSON nests containers more than ``limit`` levels deep; no recursion."""
    level: list[Any] = [value]
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend(child for child in children if type(child) in _CONTAINERS)
        if not below:
            return False
        level = below
    return True


def _short(text: str) -> str:
    """``text``, cut to its first ``_SHOWN`` characters when longer (a 1 MB value in a warning)."""
    if len(text) <= _SHOWN:
        return text
    return f"{text[:_SHOWN]}... ({len(text)} characters)"


class RecordSkipper(Generic[K]):
    """Decodes values key by key and skips the ones that are not records.

    A key whose value is not a record is logged once, as ``"{component}: skipping record {key}:
    {why}"`` at WARNING on ``logger`` (each part cut to 200 characters); it is not logged again
    until it has held a record (then a new bad value warns again). For the one thread of a
    watcher: not thread-safe.
    """

    def __init__(
        self,
        component: str,
        codec: RecordCodec | None = None,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self.component = component
        self.codec = codec if codec is not None else RecordCodec()
        self._log = logger if logger is not None else log
        self._warned: set[K] = set()

    @property
    def warned(self) -> frozenset[K]:
        """The keys skipped, and warned about, since they last held a record."""
        return frozenset(self._warned)

    def decode(self, key: K, value: bytes | str) -> Address | None:
        """The address ``value`` holds, or None (skipped) when it is not a record."""
        try:
            address = self.codec.decode(value)
        except ValueError as exc:
            self.skip(key, exc)
            return None
        self._warned.discard(key)
        return address

    def decode_many(self, items: Iterable[tuple[K, bytes]]) -> dict[K, Address]:
        """``codec.decode_many`` with this skipper: {key: address} of the values that are records."""
        records = self.codec.decode_many(items, self.skip)
        self.recovered(records)
        return records

    def skip(self, key: K, error: ValueError) -> None:
        """Skip ``key``: one warning, unless it was skipped before and has held no record since."""
        if key not in self._warned:
            self._warned.add(key)
            shown = key.decode(errors="replace") if isinstance(key, bytes) else str(key)
            self._log.warning(
                "%s: skipping record %s: %s", self.component, _short(shown), _short(str(error))
            )

    def recovered(self, keys: Iterable[K]) -> None:
        """These keys hold records now: a bad value there warns again."""
        if self._warned:
            self._warned.difference_update(keys)
