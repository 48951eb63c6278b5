"""The Consul backend under the faults of a real agent, on the Consul double: restart, hang, an
index that goes back, a failing TTL check, DeregisterCriticalServiceAfter, ACLs."""

from __future__ import annotations

import logging

import pytest

import naming
from naming.core import NamingError
from naming.testing import SHORT_TIMEOUT, wait_until
from naming.testing.consul import ConsulDouble

from ._consul import FAST, Tracker, bare_client, put_service

A1, A2, A3 = "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"


def _passing(double: ConsulDouble) -> list[str]:
    _, entries = bare_client(double).health.service("svc", passing=True)
    return sorted(entry["Service"]["ID"] for entry in entries)


def test_an_agent_restart_brings_every_registration_back_within_one_ttl_exactly_once(
    consul_double: ConsulDouble,
) -> None:
    ttl = 3.0
    target = f"consul://{consul_double.endpoint}/svc"
    registrations = [naming.register(target, addr, ttl=ttl) for addr in (A1, A2, A3)]
    try:
        ids = ["svc-127.0.0.1-7001", "svc-127.0.0.1-7002", "svc-127.0.0.1-7003"]
        wait_until(lambda: _passing(consul_double) == ids, message="three passing services")
        before = consul_double.requests["register"]
        consul_double.restart()
        assert consul_double.service_ids() == []  # the agent forgot them all
        wait_until(lambda: _passing(consul_double) == ids, timeout=ttl, message="all back")
        assert consul_double.requests["register"] - before == 3  # once each
        assert [r.registrations for r in registrations] == [2, 2, 2]  # type: ignore[attr-defined]
    finally:
        for registration in registrations:
            registration.close()
    assert consul_double.service_ids() == []


def test_a_hung_agent_keeps_the_set_and_the_watcher_recovers(
    consul_double: ConsulDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="naming.consul")
    client = bare_client(consul_double)
    put_service(client, "svc", "a", A1)
    with naming.resolve(f"consul://{consul_double.endpoint}/svc", **FAST) as watcher:
        tracker = Tracker(watcher)
        tracker.wait_for({A1})
        consul_double.hang()
        wait_until(lambda: "keeping the last 1 addresses" in caplog.text, message="the outage")
        assert watcher.next(timeout=SHORT_TIMEOUT) == []
        assert set(tracker.current) == {A1}
        consul_double.unhang()
        put_service(client, "svc", "b", A2)
        tracker.wait_for({A1, A2})
    assert [u.addr for u in tracker.seen] == [A1, A2]  # no DELETE while hung, nothing twice


def test_an_index_that_goes_back_loses_no_update_and_repeats_none(
    consul_double: ConsulDouble,
) -> None:
    client = bare_client(consul_double)
    for _ in range(5):  # move the service's index well above where the reset puts it
        put_service(client, "svc", "tmp", "127.0.0.1:7009")
        assert client.agent.service.deregister("tmp")
    put_service(client, "svc", "a", A1)
    put_service(client, "svc", "b", A2)
    with naming.resolve(f"consul://{consul_double.endpoint}/svc", **FAST) as watcher:
        tracker = Tracker(watcher)
        tracker.wait_for({A1, A2})
        consul_double.reset_index(1)  # the watcher's index is now ahead of the agent's
        put_service(client, "svc", "c", A3)
        assert client.agent.service.deregister("a")
        tracker.wait_for({A2, A3})
        assert watcher.next(timeout=10 * SHORT_TIMEOUT) == []
        put_service(client, "svc", "d", "127.0.0.1:7004")  # and it follows the new index
        tracker.wait_for({A2, A3, "127.0.0.1:7004"})
    ops = [(u.op.name, u.addr) for u in tracker.seen]
    assert sorted(ops) == sorted(
        [("ADD", A1), ("ADD", A2), ("ADD", A3), ("DELETE", A1), ("ADD", "127.0.0.1:7004")]
    )


def test_a_paused_server_leaves_the_passing_set_and_comes_back_on_resume(
    consul_double: ConsulDouble,
) -> None:
    target = f"consul://{consul_double.endpoint}/svc"
    with naming.resolve(target, **FAST) as watcher, naming.register(target, A1, ttl=3) as reg:
        tracker = Tracker(watcher)
        tracker.wait_for({A1})
        reg.pause()
        tracker.wait_for(set())
        assert consul_double.check_status("service:svc-127.0.0.1-7001") == "critical"
        assert consul_double.service_ids() == ["svc-127.0.0.1-7001"]  # still registered
        reg.resume()
        tracker.wait_for({A1})
        assert consul_double.check_status("service:svc-127.0.0.1-7001") == "passing"


def test_a_ttl_that_runs_out_turns_critical_and_the_service_leaves(
    consul_double: ConsulDouble,
) -> None:
    client = bare_client(consul_double)
    assert client.agent.service.register(
        "svc", service_id="x", address="127.0.0.1", port=7001, check={"TTL": "300ms"}
    )
    assert client.agent.check.ttl_pass("service:x")
    assert _passing(consul_double) == ["x"]
    wait_until(lambda: consul_double.check_status("service:x") == "critical", message="expiry")
    assert _passing(consul_double) == []
    _, entries = client.health.service("svc")
    assert entries[0]["Checks"][0]["Output"] == "TTL expired"


def test_critical_for_longer_than_deregister_after_removes_the_service(
    consul_double: ConsulDouble,
) -> None:
    target = f"consul://{consul_double.endpoint}/svc"
    with naming.register(target, A1, ttl=3, deregister_after=0.3) as reg:
        wait_until(lambda: _passing(consul_double) == ["svc-127.0.0.1-7001"], message="passing")
        reg.pause()
        wait_until(lambda: consul_double.service_ids() == [], message="the reaper")
        reg.resume()  # the agent forgot it: the next pass gets 404 and registers it again
        wait_until(lambda: _passing(consul_double) == ["svc-127.0.0.1-7001"], message="back")


def test_the_token_goes_in_the_header_and_never_into_logs_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with ConsulDouble(acl={"write-secret": "write", "read-secret": "read"}) as double:
        target = f"consul://{double.endpoint}/svc"
        with (
            naming.register(target, A1, ttl=3, token="write-secret") as reg,
            naming.resolve(target, token="read-secret", **FAST) as watcher,
        ):
            assert [u.addr for u in watcher.next(timeout=10)] == [A1]
            shown = f"{reg!r} {watcher!r}"
        assert set(double.tokens) == {"write-secret", "read-secret"}
        assert double.header_tokens == len(double.tokens)  # all in X-Consul-Token
    assert "secret" not in shown
    assert "secret" not in caplog.text


def test_a_wrong_token_fails_clearly_without_a_retry_storm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ConsulDouble(acl={"good": "write", "reader": "read"}) as double:
        target = f"consul://{double.endpoint}/svc"
        with (
            naming.resolve(target, token="wrong", **FAST) as watcher,
            pytest.raises(NamingError, match="ACL") as failed,
        ):
            watcher.next(timeout=10)
        assert "wrong" not in str(failed.value)
        assert double.requests["health"] == 1  # refused once, not retried
        with pytest.raises(NamingError, match=r"ACLs.*Permission denied"):
            naming.register(target, A1, ttl=3, token="reader")  # can read, cannot write
        assert double.service_ids() == []
    assert "wrong" not in caplog.text and "reader" not in caplog.text


def test_an_explicit_token_wins_over_consul_http_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-env")
    with ConsulDouble(acl={"from-env": "read", "explicit": "read"}) as double:
        target = f"consul://{double.endpoint}/svc"
        with naming.resolve(target, **FAST) as watcher:
            watcher.next(timeout=10)
        first = len(double.tokens)
        with naming.resolve(target, token="explicit", **FAST) as watcher:
            watcher.next(timeout=10)
        assert set(double.tokens[:first]) == {"from-env"}
        assert set(double.tokens[first:]) == {"explicit"}


def test_close_on_a_hung_agent_gives_up_after_close_timeout_and_says_so(
    consul_double: ConsulDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="naming.consul")
    target = f"consul://{consul_double.endpoint}/svc"
    registration = naming.register(target, A1, ttl=3, close_timeout=0.3)
    wait_until(lambda: _passing(consul_double) == ["svc-127.0.0.1-7001"], message="passing")
    consul_double.hang()
    registration.close()
    assert registration.closed
    assert "stays until its TTL runs out" in caplog.text
    consul_double.unhang()
    wait_until(lambda: _passing(consul_double) == [], message="the TTL to run out")
