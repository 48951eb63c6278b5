"""diff(old, new): the updates that turn one address set into another (grpc-go compileUpdate)."""

from __future__ import annotations

from collections.abc import Iterable

from ._types import Address, Operation, Update

__all__ = ["apply_updates", "diff"]


def diff(old: Iterable[Address | str], new: Iterable[Address | str]) -> list[Update]:
    """Return the updates that turn ``old`` into ``new``, both taken as sets.

    Deletes come first, in ``old``'s order, then adds, in ``new``'s order; duplicates collapse.
    An address whose metadata changed is a DELETE of the old one and an ADD of the new one.
    """
    before = dict.fromkeys(map(Address.of, old))
    after = dict.fromkeys(map(Address.of, new))
    deletes = [Update.delete(address) for address in before if address not in after]
    adds = [Update.add(address) for address in after if address not in before]
    return deletes + adds


def apply_updates(current: Iterable[Address], updates: Iterable[Update]) -> list[Address]:
    """Apply updates to an address list the way the legacy balancers do.

    Insertion order is kept, a duplicate ADD is skipped and a DELETE of an unknown address is ignored.
    """
    result = dict.fromkeys(current)
    for update in updates:
        address = update.address
        if update.op is Operation.ADD:
            result.setdefault(address)
        else:
            result.pop(address, None)
    return list(result)
