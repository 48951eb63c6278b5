"""The static and manual backends, reached through naming.resolve() and naming.register()."""

from __future__ import annotations

import threading

import pytest

import naming
from backends.manual import ManualResolver
from naming import (
    Address,
    BackendUnavailableError,
    NamingError,
    TargetError,
    UnknownSchemeError,
    Update,
    WatcherClosedError,
)
from tests.conftest import DEFAULT_TIMEOUT, SHORT_TIMEOUT


def test_static_first_next_returns_every_address_in_order_then_blocks() -> None:
    with naming.resolve("static:///10.0.0.2:50051,10.0.0.1:50051,[::1]:7") as watcher:
        assert watcher.next() == [
            Update.add("10.0.0.2:50051"),
            Update.add("10.0.0.1:50051"),
            Update.add("[::1]:7"),
        ]
        assert watcher.next(timeout=SHORT_TIMEOUT) == []
    with pytest.raises(WatcherClosedError):
        watcher.next()


def test_static_blocked_next_ends_with_close() -> None:
    watcher = naming.resolve("static:///a:1")
    watcher.next()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            watcher.next()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume, name="naming-test-static")
    thread.start()
    thread.join(SHORT_TIMEOUT)
    assert thread.is_alive()
    watcher.close()
    thread.join(DEFAULT_TIMEOUT)
    assert [type(e) for e in errors] == [WatcherClosedError]


def test_static_duplicates_collapse() -> None:
    with naming.resolve("static:///a:1,b:2,a:1") as watcher:
        assert watcher.next() == [Update.add("a:1"), Update.add("b:2")]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("static:///a:1,,b:2", "address 2 of 'a:1,,b:2': address '' is empty"),
        ("static:///a:1,b", "address 2 .*has no port"),
        ("static:///a:99999", "port '99999' is not a number"),
        ("static:///::1:80", "write an IPv6 host in brackets"),
        ("static:///[nothost]:80", "is not an IPv6 address"),
        ("static://h:1/a:1", "authority must be empty"),
        ("static:///a:1?x=1", "takes no options"),
    ],
)
def test_static_bad_addresses_raise_target_error(target: str, message: str) -> None:
    with pytest.raises(TargetError, match=message):
        naming.resolve(target)


def test_static_cannot_register() -> None:
    with pytest.raises(NamingError, match="static: this backend does not support registration"):
        naming.register("static:///a:1", "a:1")


def test_unknown_scheme_lists_the_installed_schemes() -> None:
    with pytest.raises(
        UnknownSchemeError, match=r"no backend for scheme 'nope'; installed: .*static"
    ):
        naming.resolve("nope:///svc")


def test_manual_every_watcher_gets_the_current_set_then_each_later_batch() -> None:
    with ManualResolver(["a:1"]) as resolver:
        first = resolver.resolve()
        resolver.update([Update.add("b:1"), Update.add("b:1"), Update.delete("zz:1")])
        second = resolver.resolve()
        resolver.update([Update.delete("a:1")])
        assert first.next() == [Update.add("a:1")]
        assert first.next() == [Update.add("b:1"), Update.add("b:1"), Update.delete("zz:1")]
        assert first.next() == [Update.delete("a:1")]
        assert second.next() == [Update.add("a:1"), Update.add("b:1")]
        assert second.next() == [Update.delete("a:1")]
        assert resolver.addresses == [Address("b:1")]
        first.close()
        assert resolver.watchers == 1
    with pytest.raises(WatcherClosedError):
        second.next()


def test_manual_set_addresses_sends_the_difference_once() -> None:
    with ManualResolver(["a:1", "b:1"]) as resolver:
        watcher = resolver.resolve()
        assert watcher.next() == [Update.add("a:1"), Update.add("b:1")]
        resolver.set_addresses(["b:1", Address("c:1", {"zone": "z"})])
        resolver.set_addresses(["b:1", Address("c:1", {"zone": "z"})])  # no change: no batch
        assert watcher.next() == [Update.delete("a:1"), Update.add(Address("c:1", {"zone": "z"}))]
        assert watcher.next(timeout=SHORT_TIMEOUT) == []


def test_manual_bad_batch_changes_nothing() -> None:
    with ManualResolver(["a:1"]) as resolver:
        watcher = resolver.resolve()
        watcher.next()
        with pytest.raises(TypeError, match=r"update 1 is a str, not a naming\.Update"):
            resolver.update([Update.delete("a:1"), "b:1"])  # type: ignore[list-item]
        assert resolver.addresses == [Address("a:1")]
        assert watcher.next(timeout=SHORT_TIMEOUT) == []


def test_manual_is_thread_safe_under_concurrent_pushes() -> None:
    with ManualResolver() as resolver:
        watcher = resolver.resolve()
        assert watcher.next() == []

        def push(worker: int) -> None:
            for i in range(200):
                resolver.update([Update.add(f"10.{worker}.0.{i}:80")])

        threads = [
            threading.Thread(target=push, args=(w,), name="naming-test-push") for w in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT)
        received = []
        while len(received) < 800:
            batch = watcher.next(timeout=DEFAULT_TIMEOUT)
            assert batch, "a pushed batch never arrived"
            received.extend(batch)
        assert len(set(received)) == 800
        assert len(resolver.addresses) == 800


def test_manual_published_name_is_reached_through_resolve_and_register() -> None:
    with ManualResolver(["a:1"], name="greeter") as resolver:
        watcher = naming.resolve("manual:///greeter")
        assert watcher.next() == [Update.add("a:1")]
        with naming.register("manual:///greeter", "b:1", {"zone": "z1"}) as registration:
            assert watcher.next() == [Update.add(Address("b:1", {"zone": "z1"}))]
            registration.pause()
            registration.pause()
            assert watcher.next() == [Update.delete(Address("b:1", {"zone": "z1"}))]
            registration.resume()
            assert watcher.next() == [Update.add(Address("b:1", {"zone": "z1"}))]
        assert registration.closed
        assert watcher.next() == [Update.delete(Address("b:1", {"zone": "z1"}))]
        with pytest.raises(NamingError, match="registration of b:1 is closed"):
            registration.resume()
        watcher.close()
        assert resolver.watchers == 0
        resolver.update([Update.add("c:1")])  # closing the watcher left the resolver open
    with pytest.raises(BackendUnavailableError, match="no resolver is published as 'greeter'"):
        naming.resolve("manual:///greeter")


def test_manual_names_are_unique_while_open() -> None:
    with ManualResolver(name="dup"), pytest.raises(NamingError, match="already published as 'dup'"):
        ManualResolver(name="dup")
    ManualResolver(name="dup").close()


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "10", True])
def test_register_rejects_a_bad_ttl(ttl: object) -> None:
    with pytest.raises(ValueError, match="register: ttl must be a positive number"):
        naming.register("manual:///x", "a:1", ttl=ttl)  # type: ignore[arg-type]


def test_register_rejects_metadata_given_twice() -> None:
    with pytest.raises(ValueError, match="not both"):
        naming.register("manual:///x", Address("a:1", {"a": 1}), {"b": 2})
