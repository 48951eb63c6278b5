"""The Consul resolver on the Consul double: addresses, metadata, filters, options, environment."""

from __future__ import annotations

import logging
from typing import Any

import consul
import pytest

import naming
from naming.core import TargetError
from naming.testing import SHORT_TIMEOUT, wait_until
from naming.testing.consul import ConsulDouble

from ._consul import FAST, Tracker, bare_client, put_service


def test_the_address_falls_back_to_the_node_address_when_the_service_has_none() -> None:
    with ConsulDouble(node_address="10.1.2.3") as double:
        client = bare_client(double)
        put_service(client, "svc", "a", "127.0.0.1:7001", address="")
        put_service(client, "svc", "b", "127.0.0.5:7002")
        with naming.resolve(f"consul://{double.endpoint}/svc", **FAST) as watcher:
            assert sorted(u.addr for u in watcher.next(timeout=10)) == [
                "10.1.2.3:7001",
                "127.0.0.5:7002",
            ]


def test_meta_tags_and_weights_become_metadata(consul_double: ConsulDouble) -> None:
    client = bare_client(consul_double)
    put_service(client, "svc", "a", "127.0.0.1:7001", meta={"zone": "z1"}, tags=["v1"], weight=3)
    put_service(client, "svc", "b", "127.0.0.1:7002")  # nothing: no metadata at all
    with naming.resolve(f"consul://{consul_double.endpoint}/svc", **FAST) as watcher:
        got = {u.addr: u.address.metadata for u in watcher.next(timeout=10)}
    assert got == {
        "127.0.0.1:7001": {"zone": "z1", "tags": ("v1",), "weight": 3},
        "127.0.0.1:7002": None,
    }
    assert isinstance(got["127.0.0.1:7001"]["weight"], int)  # what weighted_round_robin reads


def test_a_tag_filter_keeps_only_the_tagged_instances_ignoring_case(
    consul_double: ConsulDouble,
) -> None:
    client = bare_client(consul_double)
    put_service(client, "svc", "a", "127.0.0.1:7001", tags=["v1", "canary"])
    put_service(client, "svc", "b", "127.0.0.1:7002", tags=["v2"])
    put_service(client, "svc", "c", "127.0.0.1:7003", tags=["V1"])
    base = f"consul://{consul_double.endpoint}/svc"
    with naming.resolve(f"{base}?tag=v1", **FAST) as watcher:
        assert sorted(u.addr for u in watcher.next(timeout=10)) == [
            "127.0.0.1:7001",
            "127.0.0.1:7003",
        ]
    with naming.resolve(base, tag=["v1", "canary"], **FAST) as watcher:
        assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]


def test_dc_is_sent_and_an_unknown_dc_is_an_outage_that_names_it(
    consul_double: ConsulDouble, caplog: pytest.LogCaptureFixture
) -> None:
    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    with naming.resolve(f"consul://{consul_double.endpoint}/svc?dc=dc1", **FAST) as watcher:
        assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]
    caplog.set_level(logging.WARNING, logger="naming.consul")
    with naming.resolve(f"consul://{consul_double.endpoint}/svc?dc=dc9", **FAST) as watcher:
        assert watcher.next(timeout=SHORT_TIMEOUT) == []
        wait_until(lambda: "No path to datacenter" in caplog.text, message="the dc warning")


def test_passing_false_also_lists_critical_instances(consul_double: ConsulDouble) -> None:
    client = bare_client(consul_double)
    put_service(client, "svc", "a", "127.0.0.1:7001")
    assert client.agent.service.register(
        "svc", service_id="b", address="127.0.0.1", port=7002, check={"TTL": "30s"}
    )  # its check starts critical
    base = f"consul://{consul_double.endpoint}/svc"
    with naming.resolve(base, **FAST) as watcher:
        assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]
    with naming.resolve(f"{base}?passing=false", **FAST) as watcher:
        assert sorted(u.addr for u in watcher.next(timeout=10)) == [
            "127.0.0.1:7001",
            "127.0.0.1:7002",
        ]


def test_consul_http_addr_names_the_agent_when_the_target_has_none(
    consul_double: ConsulDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"http://{consul_double.endpoint}")
    with naming.resolve("consul:///svc", **FAST) as watcher:
        assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]


def test_options_are_checked() -> None:
    for bad in ("consul://127.0.0.1:8500/svc?token=x", "consul://127.0.0.1:8500/svc?consistency=x"):
        with pytest.raises((TargetError, ValueError)):
            naming.resolve(bad)
    with pytest.raises(ValueError, match="cert_cert and cert_key"):
        naming.resolve("consul://127.0.0.1:8500/svc", cert_cert="/x.pem")
    with pytest.raises(ValueError, match="must be a string"):
        naming.register("consul://127.0.0.1:8500/svc", "127.0.0.1:1", {"n": 1}, ttl=3)


def test_stale_consistency_is_sent_as_a_query_flag(consul_double: ConsulDouble) -> None:
    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    target = f"consul://{consul_double.endpoint}/svc?consistency=stale"
    with naming.resolve(target, **FAST) as watcher:
        assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]
    assert "stale" in consul_double.queries[0]


def test_an_unchanged_index_is_no_change_and_the_loop_is_rate_limited(
    consul_double: ConsulDouble,
) -> None:
    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    # a wait of 1 ms: every blocking query comes back at once with the same index
    with naming.resolve(f"consul://{consul_double.endpoint}/svc", wait=0.001) as watcher:
        tracker = Tracker(watcher)
        tracker.wait_for({"127.0.0.1:7001"})
        before = consul_double.requests["health"]
        assert watcher.next(timeout=0.5) == []
        asked = consul_double.requests["health"] - before
    assert 3 <= asked <= 0.5 / 0.02 + 5, asked  # MIN_INTERVAL (20 ms) apart at most


def test_the_six_grpc_lb_behaviours_hold_on_the_double() -> None:
    from naming._demo import run_consul_demo

    lines: list[str] = []
    results = run_consul_demo(150, lines.append)
    assert [r.behaviour[:2] for r in results] == ["1.", "2.", "3.", "4.", "5.", "6."]
    failed = [f"{r.behaviour}: {r.measured}" for r in results if not r.passed]
    assert not failed, "\n".join(lines)
    assert "NOT a real Consul agent" in lines[0]
    assert results[4].measured == "S1=50, S2=50, S4=50; failed=0; records=S1,S2,S4"


def test_the_demo_command_runs_on_the_consul_double_and_says_so() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "naming", "demo", "--backend", "consul", "--calls", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 of 6 behaviours PASS" in result.stdout
    assert "NOT a real Consul agent" in result.stdout


def test_close_cuts_a_blocking_query_in_flight(consul_double: ConsulDouble) -> None:
    import threading

    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    watcher = naming.resolve(f"consul://{consul_double.endpoint}/svc", wait=60.0)
    assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]
    wait_until(lambda: consul_double.requests["health"] >= 2, message="a blocking query")
    watcher.close()  # joins the watch thread for up to 10 s: less than the 60 s wait
    assert not [t for t in threading.enumerate() if t.name.startswith("naming-consul-watch")]


def test_tls_with_a_ca_and_a_client_certificate(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED  # verify_incoming
    ca_file, client_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("client").private_key_and_cert_chain_pem.write_to_path(str(client_file))
    caplog.set_level(logging.WARNING, logger="naming.consul")
    with ConsulDouble(tls=server_context) as double:
        client = consul.Consul(
            host="127.0.0.1",
            port=double.port,
            scheme="https",
            verify=str(ca_file),
            cert=str(client_file),
        )
        put_service(client, "svc", "a", "127.0.0.1:7001")
        client.http.close()
        target = f"consul://{double.endpoint}/svc"
        tls = {"ca_cert": str(ca_file), "cert_cert": str(client_file), "cert_key": str(client_file)}
        with naming.resolve(target, **tls, **FAST) as watcher:
            assert [u.addr for u in watcher.next(timeout=10)] == ["127.0.0.1:7001"]
        with naming.resolve(target, ca_cert=str(ca_file), **FAST) as watcher:  # no client cert
            assert watcher.next(timeout=SHORT_TIMEOUT) == []
            wait_until(lambda: "keeping the last 0 addresses" in caplog.text, message="refused")


def test_without_py_consul_resolve_and_register_say_what_to_install() -> None:
    import subprocess
    import sys

    child = (
        "import sys\n"
        "sys.modules['consul'] = None\n"
        "import naming\n"
        "for call in (lambda: naming.resolve('consul://127.0.0.1:9/svc'),\n"
        "             lambda: naming.register('consul://127.0.0.1:9/svc', '10.0.0.1:80')):\n"
        "    try:\n"
        "        call().close()\n"
        "    except Exception as exc:\n"
        "        print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=False
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    for line in lines:
        assert line.startswith("MissingDependencyError consul: the backend needs the consul module")
        assert line.endswith("pip install 'grpc-naming[consul]'")


def test_register_server_and_dial_round_robin_over_the_double(consul_double: ConsulDouble) -> None:
    from naming.testing import is_round_robin
    from naming.testing.servers import Harness, call_port, wait_for_server

    target = f"consul://{consul_double.endpoint}/echo?wait=1"
    grpc_servers: dict[str, Any] = {}
    with Harness() as harness:
        servers = harness.start_servers(
            2, services=lambda echo, grpc_server: grpc_servers.setdefault(echo.name, grpc_server)
        )
        serving = [
            naming.register_server(
                grpc_servers[s.name], target, s.address, ttl=3, signals=(), tags=["v1"]
            )
            for s in servers
        ]
        try:
            channel = harness.dial(target)
            for name in ("s0", "s1"):
                wait_for_server(channel, name)
            wait_until(
                lambda: is_round_robin(["s0", "s1"], [call_port(channel) for _ in range(4)]),
                message="calls to rotate over s0 and s1",
            )
            serving[0].stop(grace=0.1).wait(10)  # deregistered first, then stopped
            left = f"echo-{servers[1].address.replace(':', '-')}"
            wait_until(lambda: consul_double.service_ids() == [left], message="s0 deregistered")
            wait_until(
                lambda: harness_listed(channel) == [servers[1].address], message="s0 unlisted"
            )
            assert [call_port(channel) for _ in range(3)] == ["s1", "s1", "s1"]
        finally:
            for registration in serving:
                registration.stop(grace=0.1).wait(10)


def harness_listed(channel: Any) -> list[str]:
    return sorted(a.addr for a in channel.balancer.addresses)
