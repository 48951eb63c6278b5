"""The dns backend on a real dnsmasq: TTLs, SRV, outages, NXDOMAIN with grace, resolve_now()."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import naming
from backends.dns import DnsResolver, DnsWatcher
from naming import NamingError, Operation, Update
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.dns import DnsServer, SrvRecord
from naming.testing.servers import FAST_RECONNECT, PORT, EchoServer
from tests.test_dns_targets import NamedServer

NAME = "hello.example.com"
FAST = {"min_interval": 1.0, "timeout": 1.0}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer(ttl=2) as server:
        server.start()
        yield server


def adds(*addrs: str) -> list[Update]:
    return [Update(Operation.ADD, addr) for addr in addrs]


@contextlib.contextmanager
def watch(dns: DnsServer, endpoint: str, **options: Any) -> Iterator[DnsWatcher]:
    """The backend's own watcher (``rounds``, ``outage``), closed with its resolver."""
    resolver = naming.build_resolver(dns.target(endpoint), **{**FAST, **options})
    try:
        watcher = resolver.resolve(dns.target(endpoint))
        assert isinstance(watcher, DnsWatcher)
        with watcher:
            yield watcher
    finally:
        resolver.close()


def fast(target: str) -> str:
    """``target`` with the fast pacing in its query, for naming.dial."""
    return f"{target}?min_interval=1&timeout=1"


def test_a_record_change_reaches_next_within_ttl_plus_min_interval(dns: DnsServer) -> None:
    dns.set_hosts(NAME, ["127.0.0.1"])
    with watch(dns, f"{NAME}:50051") as watcher:
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == adds("127.0.0.1:50051")
        dns.set_hosts(NAME, ["127.0.0.1", "::1"])
        # TTL 2 s + min_interval 1 s + 1 s
        assert watcher.next(timeout=4.0) == adds("[::1]:50051")
        rounds = watcher.rounds
        assert watcher.next(timeout=3.0) == []  # unchanged answers: re-resolved, nothing emitted
        assert watcher.rounds >= rounds + 1


def test_ipv6_first_then_ipv4_sorted_whatever_the_server_order(dns: DnsServer) -> None:
    dns.set_hosts(NAME, ["127.0.0.3", "::2", "127.0.0.1", "::1"])
    with watch(dns, NAME) as watcher:
        got = [u.addr for u in watcher.next(timeout=DEFAULT_TIMEOUT)]
    assert got == ["[::1]:443", "[::2]:443", "127.0.0.1:443", "127.0.0.3:443"]


def test_srv_ports_and_weights_reach_the_balancer(dns: DnsServer) -> None:
    servers = [EchoServer(f"srv{i}").start() for i in range(2)]
    try:
        dns.set_hosts("a.example.com", ["127.0.0.1"])
        dns.set_hosts("b.example.com", ["127.0.0.1"])
        dns.set_srv(
            "_grpc._tcp.hello.example.com",
            [
                SrvRecord("a.example.com", servers[0].port, priority=10, weight=5),
                SrvRecord("b.example.com", servers[1].port, priority=10, weight=1),
            ],
        )
        target = dns.target("_grpc._tcp.hello.example.com")
        with watch(dns, "_grpc._tcp.hello.example.com") as watcher:
            batch = watcher.next(timeout=DEFAULT_TIMEOUT)
        got = {u.addr: dict(u.metadata or {}) for u in batch}
        assert got == {
            servers[0].address: {"weight": 5},
            servers[1].address: {"weight": 1},
        }
        channel = naming.dial(fast(target), balancer="round_robin", options=FAST_RECONNECT)
        try:
            call = channel.unary_unary(PORT)
            seen: set[str] = set()

            def both() -> bool:
                seen.add(call(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True).decode())
                return len(seen) == 2

            wait_until(both, timeout=DEFAULT_TIMEOUT, message="both SRV servers")
        finally:
            channel.close()
    finally:
        for server in servers:
            server.stop()


def test_srv_priority_group_falls_back_to_the_next(dns: DnsServer) -> None:
    dns.set_hosts("a.example.com", ["127.0.0.1"])
    dns.set_hosts("c.example.com", ["127.0.0.3"])
    dns.set_srv(
        "_grpc._tcp.hello.example.com",
        [
            SrvRecord("a.example.com", 1001, priority=0),
            SrvRecord("c.example.com", 1003, priority=1),
        ],
    )
    with watch(dns, "_grpc._tcp.hello.example.com") as watcher:
        assert [u.addr for u in watcher.next(timeout=DEFAULT_TIMEOUT)] == ["127.0.0.1:1001"]
        dns.set_hosts("a.example.com", [])  # the first group has no address any more
        batch = watcher.next(timeout=5.0)
        assert sorted((u.op, u.addr) for u in batch) == [
            (Operation.ADD, "127.0.0.3:1003"),
            (Operation.DELETE, "127.0.0.1:1001"),
        ]


def test_a_stopped_server_keeps_the_last_set(dns: DnsServer) -> None:
    dns.set_hosts(NAME, ["127.0.0.1"])
    with watch(dns, f"{NAME}:1") as watcher:
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == adds("127.0.0.1:1")
        dns.stop()
        wait_until(lambda: watcher.outage is not None, timeout=DEFAULT_TIMEOUT)
        assert watcher.next(timeout=3.0) == []  # longer than the TTL: kept
        dns.set_hosts(NAME, ["127.0.0.2"])
        dns.start()
        assert sorted(u.addr for u in watcher.next(timeout=DEFAULT_TIMEOUT)) == [
            "127.0.0.1:1",
            "127.0.0.2:1",
        ]


@pytest.mark.slow
def test_sigstop_for_ten_seconds_then_the_watcher_recovers(dns: DnsServer) -> None:
    dns.set_hosts(NAME, ["127.0.0.1"])
    with watch(dns, f"{NAME}:1") as watcher:
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == adds("127.0.0.1:1")
        dns.pause()
        try:
            assert watcher.next(timeout=10.0) == []  # timeouts: the set is kept
            assert "timed out" in str(watcher.outage)
            dns.set_hosts(NAME, ["127.0.0.2"])
        finally:
            dns.resume()
        got = watcher.next(timeout=DEFAULT_TIMEOUT)
        assert sorted((u.op, u.addr) for u in got) == [
            (Operation.ADD, "127.0.0.2:1"),
            (Operation.DELETE, "127.0.0.1:1"),
        ]
        wait_until(lambda: watcher.outage is None, timeout=DEFAULT_TIMEOUT)


def test_nxdomain_keeps_the_set_for_grace_then_empties_it(
    dns: DnsServer, caplog: pytest.LogCaptureFixture
) -> None:
    dns.set_hosts(NAME, ["127.0.0.1"])
    caplog.set_level(logging.DEBUG, logger="naming")
    with watch(dns, f"{NAME}:1", grace=3.0) as watcher:
        assert watcher.next(timeout=DEFAULT_TIMEOUT) == adds("127.0.0.1:1")
        dns.set_hosts(NAME, [])
        wait_until(lambda: "NXDOMAIN" in str(watcher.outage), timeout=DEFAULT_TIMEOUT)
        assert watcher.addresses == [naming.Address("127.0.0.1:1")]
        assert watcher.next(timeout=6.0) == [Update(Operation.DELETE, "127.0.0.1:1")]
        assert watcher.next(timeout=1.5) == []  # still missing: nothing more
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "NXDOMAIN" in warnings[0].getMessage()
    assert NAME in warnings[0].getMessage()


def test_channel_detail_says_nxdomain_and_names_the_target(dns: DnsServer) -> None:
    channel = naming.dial(fast(dns.target("missing.example.com:1")))
    errors: list[grpc.RpcError] = []

    def failed_with_the_answer() -> bool:
        # before the first lookup has answered, the detail cannot say why yet: call again
        with pytest.raises(grpc.RpcError) as caught:
            call(b"", timeout=DEFAULT_TIMEOUT)
        errors.append(caught.value)
        return "NXDOMAIN" in caught.value.details()  # type: ignore[attr-defined]

    try:
        call = channel.unary_unary(PORT)
        wait_until(failed_with_the_answer, timeout=DEFAULT_TIMEOUT, interval=0.05)
    finally:
        channel.close()
    assert {e.code() for e in errors} == {grpc.StatusCode.UNAVAILABLE}  # type: ignore[attr-defined]
    details = errors[-1].details()  # type: ignore[attr-defined]
    assert "missing.example.com" in details and "NXDOMAIN from" in details, details


def test_resolve_now_is_rate_limited_to_min_interval() -> None:
    with DnsServer(ttl=600) as dns:  # no re-resolution but the ones asked for
        dns.start()
        check_resolve_now(dns)


def check_resolve_now(dns: DnsServer) -> None:
    dns.set_hosts(NAME, ["127.0.0.1"])
    resolver = naming.build_resolver(dns.target(NAME), min_interval=2.0, timeout=1.0)
    assert isinstance(resolver, DnsResolver)
    try:
        watcher: Any = resolver.resolve(dns.target(NAME))
        watcher.next(timeout=DEFAULT_TIMEOUT)
        wait_until(lambda: watcher.rounds == 1, timeout=DEFAULT_TIMEOUT)
        for _ in range(5):
            resolver.resolve_now()
        wait_until(lambda: watcher.rounds == 2, timeout=DEFAULT_TIMEOUT)
        assert watcher.next(timeout=0.5) == [] and watcher.rounds == 2  # the other four: dropped
        dns.set_hosts(NAME, ["127.0.0.2"])
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while not watcher.resolve_now() and time.monotonic() < deadline:
            time.sleep(0.1)
        got = watcher.next(timeout=DEFAULT_TIMEOUT)
        assert sorted(u.addr for u in got) == ["127.0.0.1:443", "127.0.0.2:443"]
    finally:
        resolver.close()


def test_a_subchannel_failure_triggers_resolve_now(dns: DnsServer) -> None:
    first = NamedServer("first", "127.0.0.1:0")
    second = NamedServer("second", f"127.0.0.2:{first.port}")
    long_ttl = DnsServer(ttl=600)
    try:
        long_ttl.start()
        long_ttl.set_hosts(NAME, ["127.0.0.1"])
        channel = naming.dial(fast(long_ttl.target(f"{NAME}:{first.port}")), options=FAST_RECONNECT)
        try:
            call = channel.unary_unary(PORT)
            assert call(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True) == b"first"
            long_ttl.set_hosts(NAME, ["127.0.0.2"])
            first.stop()  # TRANSIENT_FAILURE: the channel asks for a new answer, before the TTL
            wait_until(
                lambda: answer(call) == b"second",
                timeout=DEFAULT_TIMEOUT,
                message="the second server, after resolve_now()",
            )
        finally:
            channel.close()
    finally:
        long_ttl.close()
        second.stop()


def answer(call: Any) -> bytes:
    try:
        return bytes(call(b"", timeout=1.0, wait_for_ready=True))
    except grpc.RpcError:
        return b""


def test_register_says_dns_holds_no_registrations() -> None:
    with pytest.raises(NamingError, match="dns: DNS holds no registrations"):
        naming.register("dns:///hello.example.com", "127.0.0.1:1")
