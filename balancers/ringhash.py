"""ring_hash: a consistent hash of a per-call key, so that one key keeps going to one address.

The call's metadata value under ``hash_key`` (``"x-user-id"``, say) is hashed onto a ring holding
at least ``min_ring_size`` points (2,048 by default), each connected address owning a share of
them in proportion to its weight (``metadata["weight"]``, as weighted_round_robin reads it). The
call goes to the owner of the first point at or after the key's hash. An address that is not
connected has no points, so its keys go on to the next address on the ring, and when it is back
they come back to it; when an address joins, only the keys of its new points move.

The hash is the standard library's BLAKE2b (8 bytes), which meets the spread targets
(docs/balancers.md), so no extra is needed. A call without the key gets a random address, or,
with ``require_key=True``, fails: the channel reports INTERNAL.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from naming.core import Address, NamingError, Resolver, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState
from ._weight import address_weight

__all__ = ["RingHash", "RingHashPicker", "key_hash"]


def key_hash(key: str | bytes) -> int:
    """The 64-bit ring position of ``key``."""
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class _Points:
    """An address's weight and its ring points, hashed once per point count and kept."""

    __slots__ = ("_count", "_points", "addr", "weight")

    def __init__(self, address: Address, weight: int) -> None:
        self.addr = address.addr
        self.weight = weight
        self._count = 0
        self._points: list[int] = []

    def points(self, count: int) -> list[int]:
        if count != self._count:
            self._points = [key_hash(f"{self.addr}#{i}") for i in range(count)]
            self._count = count
        return self._points


class RingHashPicker(Picker):
    """An immutable sorted ring of ``(hash, index into ready)``; a pick is one bisect."""

    __slots__ = ("_hashes", "_key", "_owners", "_random", "_require", "ready")

    def __init__(
        self,
        ready: Sequence[Address],
        states: Sequence[_Points],
        *,
        hash_key: str,
        require_key: bool,
        min_ring_size: int,
        rng: random.Random,
    ) -> None:
        self.ready = ready
        total = sum(s.weight for s in states)
        # points per unit of weight: a power of two, so that it stays put while the total drifts
        per_weight = 1 << max(0, math.ceil(math.log2(min_ring_size / total)))
        ring = sorted(
            (point, index)
            for index, stats in enumerate(states)
            for point in stats.points(stats.weight * per_weight)
        )
        self._hashes = [point for point, _ in ring]
        self._owners = [index for _, index in ring]
        self._key = hash_key
        self._require = require_key
        self._random = rng.randrange

    @property
    def size(self) -> int:
        """How many points the ring holds."""
        return len(self._hashes)

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        key = None if info is None else info.value(self._key)
        if key is None:
            if self._require:
                raise NamingError(f"ring_hash: the call has no {self._key!r} metadata")
            return self.ready[self._random(len(self.ready))], None
        at = bisect.bisect_left(self._hashes, key_hash(key))
        return self.ready[self._owners[at % len(self._owners)]], None


class RingHash(PickerBalancer):
    """Each RPC goes to the address that owns the hash of its ``hash_key`` metadata value.

    ``hash_key`` is a metadata key (lower case, as gRPC sends it); ``require_key`` makes a call
    without it fail instead of going to a random address; ``min_ring_size`` (an int >= 1) is the
    least number of points on the ring; ``seed`` fixes the random choices for calls without a key.
    """

    name = "ring_hash"

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        hash_key: str = "x-user-id",
        require_key: bool = False,
        min_ring_size: int = 2048,
        seed: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(hash_key, str) or not hash_key:
            raise ValueError(f"ring_hash: hash_key must be a metadata key, not {hash_key!r}")
        if type(min_ring_size) is not int or min_ring_size < 1:
            raise ValueError(f"ring_hash: min_ring_size must be an int >= 1: {min_ring_size!r}")
        super().__init__(resolver, **options)
        self.hash_key = hash_key.lower()
        self.require_key = bool(require_key)
        self.min_ring_size = min_ring_size
        self._rng = random.Random(seed)

    def new_address_state(self, address: Address) -> _Points:
        return _Points(address, address_weight(address, self._log, self.name))

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return RingHashPicker(
            state.ready,
            state.states,
            hash_key=self.hash_key,
            require_key=self.require_key,
            min_ring_size=self.min_ring_size,
            rng=self._rng,
        )


@hookimpl
def naming_register_balancers(register: Callable[[type[RingHash]], None]) -> None:
    register(RingHash)
