"""Shared fixtures: the leak check that runs after every test, and a private plugin registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from naming import core as _plugins
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, LeakCheck

# the kit's timeouts, for the tests that import them from here
__all__ = ["DEFAULT_TIMEOUT", "SHORT_TIMEOUT"]

pytest_plugins = [
    "tests._etcd",  # real etcd servers: etcd_server, etcd_prefix, etcd_private, etcd_cluster
    "tests._consul",  # the Consul double: consul_double
    "tests._zk",  # real ZooKeeper servers: zk_server, zk_root, zk_client, zk_private, zk_ensemble
    "tests._greeter",  # the helloworld greeter's generated stubs: stubs_dir, greeter
    "naming.testing.leaks",  # naming_leak_check
    "naming.testing.conformance",  # the conformance suite of a backend
    "pytester",  # runs pytest inside a test, for the tests of the conformance plugin
]


@pytest.fixture(autouse=True)
def leak_check(naming_leak_check: LeakCheck) -> LeakCheck:
    """Fail a test that leaves a watcher, balancer or channel thread of ours running."""
    return naming_leak_check


@pytest.fixture
def fresh_registry() -> Iterator[_plugins.PluginRegistry]:
    """A new plugin registry installed for the duration of one test."""
    registry = _plugins.PluginRegistry()
    old = _plugins.set_registry(registry)
    try:
        yield registry
    finally:
        _plugins.set_registry(old)
