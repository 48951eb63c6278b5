"""Helpers for the policy tests: a started balancer over a ManualResolver, driven by FakeChannel."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import balancers
from backends.manual import ManualResolver
from balancers import PickerBalancer, PickInfo
from naming import Address, Update
from naming.testing import DEFAULT_TIMEOUT, FakeChannel, wait_until

__all__ = ["driven", "keyed", "picks", "push"]


@contextlib.contextmanager
def driven(
    name: str, addresses: Sequence[Address], **options: Any
) -> Iterator[tuple[PickerBalancer, ManualResolver, FakeChannel]]:
    """The balancer ``name`` started on a manual resolver holding ``addresses``, all connected."""
    with ManualResolver() as resolver:
        balancer = balancers.create(name, resolver, **options)
        assert isinstance(balancer, PickerBalancer)
        balancer.start("manual:///policies")
        fake = FakeChannel(balancer)
        try:
            push(balancer, resolver, fake, [Update.add(a) for a in addresses])
            yield balancer, resolver, fake
        finally:
            fake.close()


def push(
    balancer: PickerBalancer, resolver: ManualResolver, fake: FakeChannel, updates: list[Update]
) -> None:
    """Apply ``updates`` and wait until the fake channel connected exactly the listed addresses."""
    resolver.update(updates)
    resolved = resolver.addresses
    selection = balancer._selection  # the filter and subset options, when given
    want = set(resolved if selection is None else selection.select(resolved))

    def settled() -> bool:
        return set(balancer.addresses) == want and fake.connected == want

    wait_until(settled, DEFAULT_TIMEOUT, "the fake channel to connect the new list")


def keyed(key: str, value: str) -> PickInfo:
    return PickInfo("/naming.test.Echo/Port", ((key, value),))


def picks(balancer: PickerBalancer, count: int, info: PickInfo | None = None) -> list[str]:
    """``count`` picks, each ended at once (its put called with no DoneInfo); the addr strings."""
    chosen = []
    for _ in range(count):
        address, put = balancer.get(info=info)
        if put is not None:
            put(None)
        chosen.append(address.addr)
    return chosen
