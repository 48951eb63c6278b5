"""Shared fixtures: the leak check that runs after every test, and a private plugin registry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from naming import core as _plugins

pytest_plugins = [
    "tests._etcd"
]  # real etcd servers: etcd_server, etcd_prefix, etcd_private, etcd_cluster

# Two timeouts (grpc-go style): long for what must happen, short to show that something does not.
DEFAULT_TIMEOUT = 10.0
SHORT_TIMEOUT = 0.05

LEAK_GRACE = 5.0


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("naming-") and t.is_alive()]


@pytest.fixture(autouse=True)
def leak_check() -> Iterator[None]:
    """Fail a test that leaves a watcher, balancer or channel thread of ours running."""
    before = set(_our_threads())
    yield
    deadline = time.monotonic() + LEAK_GRACE
    leaked = [t for t in _our_threads() if t not in before]
    while leaked and time.monotonic() < deadline:
        time.sleep(0.01)
        leaked = [t for t in _our_threads() if t not in before]
    if leaked:
        pytest.fail(f"threads still running after the test: {sorted(t.name for t in leaked)}")


@pytest.fixture
def fresh_registry() -> Iterator[_plugins.PluginRegistry]:
    """A new plugin registry installed for the duration of one test."""
    registry = _plugins.PluginRegistry()
    old = _plugins.set_registry(registry)
    try:
        yield registry
    finally:
        _plugins.set_registry(old)
