"""An address's weight from its metadata (``Address.metadata["weight"]``), for the weighted policies.

A weight is an int >= 1 or a string of one ("3"); a missing weight is 1, and so is a bad one (0, -2,
2.5, "x", True), with one warning for that address. The policies read it once, when the address is
listed (``new_address_state``), so the warning comes once per address.
"""

from __future__ import annotations

import logging

from naming.core import Address

__all__ = ["address_weight"]


def address_weight(address: Address, log: logging.Logger, policy: str) -> int:
    """The weight of ``address``: ``metadata["weight"]`` when it is a whole number >= 1, else 1."""
    metadata = address.metadata
    if metadata is None or "weight" not in metadata:
        return 1
    value = metadata["weight"]
    weight: int | None = None
    if type(value) is int:
        weight = value
    elif isinstance(value, str) and value.strip().isdigit():
        weight = int(value.strip())
    if weight is None or weight < 1:
        log.warning("%s: %s has a bad weight %r; it counts as 1", policy, address.addr, value)
        return 1
    return weight
