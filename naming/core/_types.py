"""Operation, Update and Address: the values that flow from watchers to balancers.

They mirror the legacy grpc-go ``naming.Update`` and ``grpc.Address``. Metadata is frozen into an
immutable, hashable mapping so that an address can be a dict key and so that two addresses are equal
only when both the address string and the metadata are equal, as in Go.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from typing import Any, cast

__all__ = ["Address", "FrozenMap", "Operation", "Update"]


class Operation(enum.IntEnum):
    """What an :class:`Update` does to the address set."""

    ADD = 0
    DELETE = 1


class FrozenMap(Mapping[str, Any]):
    """An immutable, hashable mapping; nested dicts become FrozenMap, lists become tuples."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        frozen: dict[str, Any] = {}
        for key, value in (items or {}).items():
            if not isinstance(key, str):
                raise TypeError(f"metadata: keys must be strings, got {type(key).__name__} {key!r}")
            # most metadata values are JSON scalars: skip the checks (and ABC lookups) for them
            frozen[key] = value if type(value) in _SCALARS else _freeze(value, key)
        self._items = frozen
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._items.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._items) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"{{{', '.join(f'{k!r}: {v!r}' for k, v in self._items.items())}}}"

    def thaw(self) -> dict[str, Any]:
        """A plain, mutable copy (nested values thawed too), e.g. for JSON encoding."""
        return {key: _thaw(value) for key, value in self._items.items()}


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _freeze(value: Any, where: str) -> Any:
    if isinstance(value, FrozenMap):
        return value
    if isinstance(value, Mapping):
        return FrozenMap(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(item, where) for item in value)
    if isinstance(value, (set, frozenset)):
        return frozenset(_freeze(item, where) for item in value)
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"metadata: value of {where!r} is an unhashable {type(value).__name__}"
        ) from None
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, FrozenMap):
        return value.thaw()
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    if isinstance(value, frozenset):
        return sorted((_thaw(item) for item in value), key=repr)
    return value


def freeze_metadata(metadata: Mapping[str, Any] | None, owner: str) -> FrozenMap | None:
    """Return metadata as FrozenMap (None stays None); reject anything that is not a mapping."""
    if type(metadata) is dict:  # the common case, without two ABC checks
        return FrozenMap(metadata)
    if metadata is None or isinstance(metadata, FrozenMap):
        return metadata
    if not isinstance(metadata, Mapping):
        raise TypeError(
            f"{owner}: metadata must be a mapping or None, got {type(metadata).__name__}"
        )
    return FrozenMap(metadata)


def _check_addr(addr: object, owner: str) -> None:
    if not isinstance(addr, str) or not addr:
        raise ValueError(f"{owner}: addr must be a non-empty string, got {addr!r}")


@dataclass(frozen=True, slots=True)
class Address:
    """A server the client may connect to (legacy ``grpc.Address``).

    Hashable. Two addresses are equal only when ``addr`` and ``metadata`` are both equal, so a DELETE
    must carry the same metadata as the ADD it undoes.
    """

    addr: str
    metadata: FrozenMap | None = field(default=None)

    def __init__(self, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        if type(addr) is not str or not addr:  # the checks in full only when the quick one fails
            _check_addr(addr, "Address")
        if metadata is not None and type(metadata) is not FrozenMap:
            metadata = freeze_metadata(metadata, "Address")
        _set_address_addr(self, addr)
        _set_address_metadata(self, metadata)

    def __hash__(self) -> int:
        # equal addresses have equal addr strings, whose hash Python caches; metadata only decides
        # between the rare addresses that share one (the dataclass's hash would hash both)
        return hash(self.addr)

    def __repr__(self) -> str:
        if self.metadata is None:
            return f"Address({self.addr!r})"
        return f"Address({self.addr!r}, {self.metadata!r})"

    @classmethod
    def of(cls, value: Address | str) -> Address:
        """Accept an Address or a bare ``host:port`` string."""
        if isinstance(value, Address):
            return value
        if isinstance(value, str):
            return cls(value)
        raise TypeError(f"Address: expected an Address or a str, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Update:
    """One change of a name's resolution (legacy ``naming.Update``)."""

    op: Operation
    addr: str
    metadata: FrozenMap | None = field(default=None)

    def __init__(self, op: Operation | int, addr: str, metadata: Mapping[str, Any] | None = None):
        try:
            operation = op if type(op) is Operation else Operation(op)
        except ValueError:
            raise ValueError(
                f"Update: unknown operation {op!r}; use Operation.ADD or DELETE"
            ) from None
        _check_addr(addr, "Update")
        _set_update_op(self, operation)
        _set_update_addr(self, addr)
        _set_update_metadata(self, freeze_metadata(metadata, "Update"))

    def __repr__(self) -> str:
        meta = "" if self.metadata is None else f", {self.metadata!r}"
        return f"Update({self.op.name}, {self.addr!r}{meta})"

    @property
    def address(self) -> Address:
        """The Address this update adds or deletes."""
        address: Address = object.__new__(Address)  # both fields were checked already
        _set_address_addr(address, self.addr)
        _set_address_metadata(address, self.metadata)
        return address

    @classmethod
    def add(cls, address: Address | str) -> Update:
        address = Address.of(address)
        if cls is Update:
            return update_of(Operation.ADD, address)
        return cls(Operation.ADD, address.addr, address.metadata)

    @classmethod
    def delete(cls, address: Address | str) -> Update:
        address = Address.of(address)
        if cls is Update:
            return update_of(Operation.DELETE, address)
        return cls(Operation.DELETE, address.addr, address.metadata)


# The slots' own setters. The classes are frozen, so their fields are set through these: a third of
# the cost of object.__setattr__, which matters when a watcher turns 10,000 records into updates.
def _setter(cls: type, name: str) -> Callable[[object, Any], None]:
    return cast(Callable[[object, Any], None], cls.__dict__[name].__set__)


_set_address_addr = _setter(Address, "addr")
_set_address_metadata = _setter(Address, "metadata")
_set_update_op = _setter(Update, "op")
_set_update_addr = _setter(Update, "addr")
_set_update_metadata = _setter(Update, "metadata")


def update_of(op: Operation, address: Address) -> Update:
    """``Update(op, address.addr, address.metadata)`` without checking again what Address checked."""
    update: Update = object.__new__(Update)
    _set_update_op(update, op)
    _set_update_addr(update, address.addr)
    _set_update_metadata(update, address.metadata)
    return update


def updates_of(op: Operation, addresses: Collection[Address]) -> list[Update]:
    """``[update_of(op, a) for a in addresses]``, with the loops in C: a whole set at once."""
    updates: list[Update] = list(map(object.__new__, repeat(Update, len(addresses))))
    deque(map(_set_update_op, updates, repeat(op)), maxlen=0)
    deque(map(_set_update_addr, updates, map(_get_addr, addresses)), maxlen=0)
    deque(map(_set_update_metadata, updates, map(_get_metadata, addresses)), maxlen=0)
    return updates


_get_addr = attrgetter("addr")
_get_metadata = attrgetter("metadata")
