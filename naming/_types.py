"""Operation, Update and Address: the values that flow from watchers to balancers.

They mirror the legacy grpc-go ``naming.Update`` and ``grpc.Address``. Metadata is frozen into an
immutable, hashable mapping so that an address can be a dict key and so that two addresses are equal
only when both the address string and the metadata are equal, as in Go.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

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
            frozen[key] = _freeze(value, key)
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
        _check_addr(addr, "Address")
        object.__setattr__(self, "addr", addr)
        object.__setattr__(self, "metadata", freeze_metadata(metadata, "Address"))

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
            operation = Operation(op)
        except ValueError:
            raise ValueError(
                f"Update: unknown operation {op!r}; use Operation.ADD or DELETE"
            ) from None
        _check_addr(addr, "Update")
        object.__setattr__(self, "op", operation)
        object.__setattr__(self, "addr", addr)
        object.__setattr__(self, "metadata", freeze_metadata(metadata, "Update"))

    def __repr__(self) -> str:
        meta = "" if self.metadata is None else f", {self.metadata!r}"
        return f"Update({self.op.name}, {self.addr!r}{meta})"

    @property
    def address(self) -> Address:
        """The Address this update adds or deletes."""
        return Address(self.addr, self.metadata)

    @classmethod
    def add(cls, address: Address | str) -> Update:
        address = Address.of(address)
        return cls(Operation.ADD, address.addr, address.metadata)

    @classmethod
    def delete(cls, address: Address | str) -> Update:
        address = Address.of(address)
        return cls(Operation.DELETE, address.addr, address.metadata)
