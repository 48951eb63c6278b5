"""Consul double fixtures and a bare py-consul writer, for the Consul backend's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import consul
import pytest

from naming.testing.consul import ConsulDouble

FAST = {"wait": 1.0, "timeout": 2.0}  # short blocking waits, so faults show within a test


@pytest.fixture
def consul_double() -> Iterator[ConsulDouble]:
    """A fresh double of a Consul agent (ACLs off), closed after the test."""
    with ConsulDouble() as double:
        yield double


def bare_client(double: ConsulDouble, token: str | None = None) -> Any:
    """A plain py-consul client of the double: the path of writes that is not the backend's."""
    return consul.Consul(host="127.0.0.1", port=double.port, token=token)


def put_service(
    client: Any,
    service: str,
    instance_id: str,
    addr: str,
    *,
    meta: Mapping[str, str] | None = None,
    tags: list[str] | None = None,
    weight: int | None = None,
    address: str | None = None,
) -> None:
    """Register a check-less (so passing) service ``instance_id`` of ``service`` at ``addr``."""
    host, _, port = addr.rpartition(":")
    assert client.agent.service.register(
        service,
        service_id=instance_id,
        address=host if address is None else address,
        port=int(port),
        tags=tags,
        meta=dict(meta) if meta else None,
        weights={"Passing": weight, "Warning": 1} if weight else None,
    )


class Tracker:
    """Applies a watcher's batches to ``current`` and keeps every update in ``seen``; an ADD of an
    address already there, or a DELETE of one that is not, fails at once (a duplicate)."""

    def __init__(self, watcher: Any) -> None:
        self.watcher = watcher
        self.current: dict[str, Any] = {}
        self.seen: list[Any] = []

    def read(self, timeout: float) -> list[Any]:
        from naming.core import Operation

        batch = self.watcher.next(timeout=timeout)
        for update in batch:
            self.seen.append(update)
            if update.op is Operation.ADD:
                assert update.addr not in self.current, f"a duplicate ADD of {update.addr}"
                self.current[update.addr] = update.address.metadata
            else:
                assert update.addr in self.current, f"a DELETE of {update.addr}, not in the set"
                del self.current[update.addr]
        return batch

    def wait_for(self, addrs: set[str], timeout: float = 10.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while set(self.current) != addrs:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the set is {sorted(self.current)}, expected {sorted(addrs)}"
            self.read(min(remaining, 0.5))
