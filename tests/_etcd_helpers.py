"""Small helpers shared by the etcd tests: follow a watcher, read keys with etcdctl."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from naming import Address, Operation, Update, Watcher
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.etcd import EtcdServer


class Follower:
    """Applies a watcher's updates to a set, and checks every update against what it knows."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.addresses: set[Address] = set()
        self.history: list[list[Update]] = []

    def wait_for(self, expected: set[Address] | set[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        want = {Address.of(a) for a in expected}
        self.wait_until(
            lambda: self.addresses == want, timeout, f"addresses {sorted(a.addr for a in want)}"
        )

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"{what} not reached; have {sorted(a.addr for a in self.addresses)}"
                )
            self.apply(self.watcher.next(timeout=min(remaining, 0.5)))

    def apply(self, batch: list[Update]) -> None:
        if not batch:
            return
        self.history.append(batch)
        for update in batch:
            if update.op is Operation.ADD:
                assert update.address not in self.addresses, f"ADD of a known address: {update}"
                self.addresses.add(update.address)
            else:
                assert update.address in self.addresses, f"DELETE of an unknown address: {update}"
                self.addresses.remove(update.address)

    def quiet_for(self, seconds: float) -> list[Update]:
        """Everything that arrives within ``seconds`` (expected: nothing)."""
        arrived: list[Update] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            batch = self.watcher.next(timeout=remaining)
            self.apply(batch)
            arrived.extend(batch)
        return arrived


def keys(server: EtcdServer, prefix: str) -> dict[str, str]:
    """Every key under ``prefix`` with its value, read with etcdctl."""
    result = server.etcdctl("get", prefix, "--prefix", "-w", "json")
    data = json.loads(result.stdout or "{}")
    import base64

    return {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
        for kv in data.get("kvs", [])
    }
