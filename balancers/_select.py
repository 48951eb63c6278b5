"""Which resolved addresses a PickerBalancer uses: a metadata filter, then a subset of them.

``filter`` keeps the addresses whose metadata matches (a mapping: every key equal; or a callable
``Address -> bool``); ``filter_fallback=True`` keeps them all when none matches. ``subset_size``
then keeps at most that many, chosen from the client's identity so that every client of a fleet
gets its own, stable subset:

* ``client_index`` of ``client_count`` (clients that know their index): the addresses are put in
  an order every client agrees on (by a hash of ``addr``) and client i takes the ``subset_size``
  addresses from position ``floor(i * n / client_count)`` on, around the circle. Windows that
  start evenly spaced cover every server about equally (100 clients, subsets of 10, 100 servers:
  exactly 10 clients per server). Google's SRE book shuffles the list per round of clients
  instead, which spreads as well but moves every client's subset when one server joins; a window
  moves by about one member.
* ``client_id`` (any string; by default one made per process): rendezvous hashing as in gRPC
  proposal A68, the ``subset_size`` addresses with the highest hash of ``(client_id, addr)``. The
  spread is looser (a binomial one), and a joining or leaving address changes at most one member.

Both are recomputed over the whole resolved set on every batch: O(n) per batch when these options
are in use, O(changes) otherwise (they cost nothing when unset).
"""

from __future__ import annotations

import hashlib
import heapq
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from naming.core import Address, Operation, Update

__all__ = ["PROCESS_ID", "AddressFilter", "Selection"]

PROCESS_ID = uuid.uuid4().hex
"""The default ``client_id``: the same for every balancer of this process, new in the next one."""

AddressFilter: TypeAlias = Mapping[str, Any] | Callable[[Address], bool]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _matcher(policy: str, wanted: AddressFilter) -> Callable[[Address], bool]:
    if callable(wanted):
        return wanted
    if not isinstance(wanted, Mapping) or not wanted:
        raise TypeError(f"{policy}: filter must be a non-empty mapping or a callable: {wanted!r}")
    items = tuple(wanted.items())

    def match(address: Address) -> bool:
        metadata = address.metadata
        return metadata is not None and all(
            key in metadata and metadata[key] == value for key, value in items
        )

    return match


def _count(policy: str, option: str, value: Any, low: int) -> int:
    if type(value) is not int or value < low:
        raise ValueError(f"{policy}: {option} must be an int >= {low}, not {value!r}")
    return value


class Selection:
    """The filter and subset options of one balancer, and the resolved set they select from.

    Not thread-safe: the balancer calls ``updates()`` under its lock.
    """

    def __init__(
        self,
        policy: str,
        *,
        subset_size: int | None = None,
        client_index: int | None = None,
        client_count: int | None = None,
        client_id: str | None = None,
        filter: AddressFilter | None = None,
        filter_fallback: bool = False,
    ) -> None:
        self._match = None if filter is None else _matcher(policy, filter)
        self._fallback = bool(filter_fallback)
        self.subset_size = None
        self.client_index = self.client_count = None
        self.client_id = None
        if subset_size is None:
            if (client_index, client_count, client_id) != (None, None, None):
                raise ValueError(
                    f"{policy}: client_index, client_count and client_id need subset_size"
                )
        else:
            self.subset_size = _count(policy, "subset_size", subset_size, 1)
            if client_index is not None or client_count is not None:
                if client_id is not None:
                    raise ValueError(f"{policy}: give client_index or client_id, not both")
                count = _count(policy, "client_count", client_count, 1)
                index = _count(policy, "client_index", client_index, 0)
                if index >= count:
                    raise ValueError(
                        f"{policy}: client_index {index} is not below client_count {count}"
                    )
                self.client_index, self.client_count = index, count
            else:
                if client_id is not None and not isinstance(client_id, str):
                    raise TypeError(f"{policy}: client_id must be a str, not {client_id!r}")
                self.client_id = PROCESS_ID if client_id is None else client_id
        self._resolved: dict[Address, None] = {}

    @staticmethod
    def wanted(**options: Any) -> bool:
        """Whether any of these options is set (a balancer without them keeps no Selection)."""
        return any(v is not None and v is not False for v in options.values())

    def select(self, addresses: Iterable[Address]) -> list[Address]:
        """The addresses to use out of ``addresses``, in their order."""
        chosen = list(addresses)
        if self._match is not None:
            matching = [a for a in chosen if self._match(a)]
            chosen = matching if matching or not self._fallback else chosen
        size = self.subset_size
        if size is None or len(chosen) <= size:
            return chosen
        if self.client_count is not None:
            assert self.client_index is not None
            circle = sorted(chosen, key=lambda a: (_hash(a.addr), a.addr))
            start = self.client_index * len(circle) // self.client_count
            keep = {circle[(start + k) % len(circle)] for k in range(size)}
        else:
            salt = f"{self.client_id}\0"
            keep = set(heapq.nlargest(size, chosen, key=lambda a: (_hash(salt + a.addr), a.addr)))
        return [a for a in chosen if a in keep]

    def updates(
        self, updates: list[Update], replace: bool, current: Iterable[Address]
    ) -> list[Update]:
        """Take a batch of the resolved set; the updates that turn ``current`` into the selection."""
        if replace:
            self._resolved.clear()
        for update in updates:
            if update.op is Operation.ADD:
                self._resolved[update.address] = None
            else:
                self._resolved.pop(update.address, None)
        selected = self.select(self._resolved)
        now = dict.fromkeys(current)
        keep = set(selected)
        changes = [Update.delete(a) for a in now if a not in keep]
        changes += [Update.add(a) for a in selected if a not in now]
        return changes
