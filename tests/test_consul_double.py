"""The Consul double itself, through py-consul and raw HTTP: the behaviours
docs/testing-consul-double.md lists, each as Consul's docs describe it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Any

import consul
import pytest

from naming.testing import wait_until
from naming.testing.consul import ConsulDouble

from ._consul import bare_client, put_service


def _http(
    double: ConsulDouble,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{double.endpoint}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, reply.headers, reply.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers, exc.read().decode()


def test_register_decodes_like_consul(consul_double: ConsulDouble) -> None:
    ok = {
        "name": "svc",
        "ID": "a",
        "port": 1,
        "Check": {"ttl": "10s", "deregister_critical_service_after": "1m"},
    }
    assert _http(consul_double, "PUT", "/v1/agent/service/register", ok)[0] == 200
    status, _, body = _http(
        consul_double, "PUT", "/v1/agent/service/register", {"Name": "s", "Bogus": 1}
    )
    assert (status, "unknown field" in body) == (400, True)
    status, _, body = _http(
        consul_double, "PUT", "/v1/agent/service/register", {"Name": "s", "Check": {"TTL": "3"}}
    )
    assert (status, "missing unit" in body) == (400, True)
    status, _, _ = _http(
        consul_double, "PUT", "/v1/agent/service/register", {"Name": "s", "Meta": {"k": 1}}
    )
    assert status == 400
    status, _, _ = _http(consul_double, "PUT", "/v1/agent/service/register", {"Port": 1})
    assert status == 400  # no name
    assert consul_double.service_ids() == ["a"]
    assert consul_double.check_status("service:a") == "critical"  # until the first pass


def test_health_answers_have_consul_shapes_and_headers(consul_double: ConsulDouble) -> None:
    put_service(bare_client(consul_double), "svc", "a", "127.0.0.1:7001")
    status, headers, body = _http(consul_double, "GET", "/v1/health/service/svc")
    (entry,) = json.loads(body)
    assert status == 200 and set(entry) == {"Node", "Service", "Checks"}
    assert entry["Service"]["Tags"] == [] and entry["Service"]["Meta"] is None
    assert entry["Service"]["Weights"] == {"Passing": 1, "Warning": 1}
    assert [c["CheckID"] for c in entry["Checks"]] == ["serfHealth"]
    assert int(headers["X-Consul-Index"]) >= 1 and headers["X-Consul-KnownLeader"] == "true"
    _, headers, body = _http(consul_double, "GET", "/v1/health/service/nothing")
    assert json.loads(body) == [] and int(headers["X-Consul-Index"]) >= 1  # never 0


def test_passing_drops_warning_as_well_as_critical(consul_double: ConsulDouble) -> None:
    client = bare_client(consul_double)
    for sid in ("ok", "warn", "crit"):
        assert client.agent.service.register("svc", service_id=sid, port=1, check={"TTL": "30s"})
    assert client.agent.check.ttl_pass("service:ok")
    assert client.agent.check.ttl_warn("service:warn")
    _, passing = client.health.service("svc", passing=True)
    _, every = client.health.service("svc")
    assert [e["Service"]["ID"] for e in passing] == ["ok"]
    assert sorted(e["Service"]["ID"] for e in every) == ["crit", "ok", "warn"]


def test_a_repeated_pass_moves_no_index_and_an_unknown_check_is_404(
    consul_double: ConsulDouble,
) -> None:
    client = bare_client(consul_double)
    assert client.agent.service.register("svc", service_id="a", port=1, check={"TTL": "30s"})
    assert client.agent.check.ttl_pass("service:a")
    first, _ = client.health.service("svc")
    assert client.agent.check.ttl_pass("service:a")
    again, _ = client.health.service("svc")
    assert first == again
    assert client.agent.check.ttl_pass("service:nope") is False  # py-consul: 404 -> False
    assert client.agent.service.deregister("nope") is False  # 404 on current agents


def test_a_blocking_query_waits_for_a_change_or_for_its_wait(consul_double: ConsulDouble) -> None:
    client = bare_client(consul_double)
    index, _ = client.health.service("svc")
    same, _ = client.health.service("svc", index=index, wait="100ms")
    assert same == index  # the wait ran out: same index, no change
    timer = threading.Timer(
        0.1, put_service, (bare_client(consul_double), "svc", "a", "127.0.0.1:1")
    )
    timer.start()
    try:
        moved, entries = client.health.service("svc", index=index, wait="10s")
    finally:
        timer.join()
    assert int(moved) > int(index) and [e["Service"]["ID"] for e in entries] == ["a"]


def test_an_index_ahead_of_the_agent_blocks_for_the_whole_wait(consul_double: ConsulDouble) -> None:
    client = bare_client(consul_double)
    for n in range(4):
        put_service(client, "svc", f"s{n}", f"127.0.0.1:{7000 + n}")
    index, _ = client.health.service("svc")
    consul_double.reset_index(1)
    put_service(client, "svc", "new", "127.0.0.1:7100")  # index 2: not past the client's
    low, entries = client.health.service("svc", index=index, wait="200ms")
    assert int(low) < int(index) and len(entries) == 5  # a client must reset to 0 here


def test_acls_filter_reads_and_refuse_writes() -> None:
    with ConsulDouble(acl={"w": "write", "r": "read"}) as double:
        put_service(bare_client(double, "w"), "svc", "a", "127.0.0.1:1")
        assert bare_client(double, "r").health.service("svc")[1] != []
        assert bare_client(double).health.service("svc")[1] == []  # anonymous: 200, empty
        with pytest.raises(consul.ACLPermissionDenied, match="ACL not found"):
            bare_client(double, "bogus").health.service("svc")
        with pytest.raises(consul.ACLPermissionDenied, match="lacks permission 'service:write'"):
            put_service(bare_client(double, "r"), "svc", "b", "127.0.0.1:2")
        # ?token= is read before the header
        status, _, _ = _http(
            double, "GET", "/v1/health/service/svc?token=bogus", headers={"X-Consul-Token": "r"}
        )
        assert status == 403
        status, _, body = _http(
            double, "GET", "/v1/health/service/svc", headers={"Authorization": "Bearer r"}
        )
        assert status == 200 and len(json.loads(body)) == 1


def test_stop_refuses_and_hang_answers_nothing(consul_double: ConsulDouble) -> None:
    consul_double.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{consul_double.endpoint}/v1/status/leader", timeout=2)
    consul_double.start()
    consul_double.hang()
    with pytest.raises(OSError):  # accepted, then nothing: the client times out
        urllib.request.urlopen(f"http://{consul_double.endpoint}/v1/status/leader", timeout=0.3)
    consul_double.unhang()
    with urllib.request.urlopen(
        f"http://{consul_double.endpoint}/v1/status/leader", timeout=2
    ) as r:
        assert r.status == 200


def test_a_grpc_check_is_probed_by_the_double(consul_double: ConsulDouble) -> None:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    import naming
    from naming.testing.servers import EchoServer

    servicer = health.HealthServicer()

    def add_health(_: Any, grpc_server: Any) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(servicer, grpc_server)

    server = EchoServer("s0", services=add_health).start()
    try:
        target = f"consul://{consul_double.endpoint}/svc"
        with naming.register(target, server.address, ttl=1.5, check="grpc"):
            sid = f"service:svc-{server.address.replace(':', '-')}"
            wait_until(lambda: consul_double.check_status(sid) == "passing", message="probed")
            servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
            wait_until(lambda: consul_double.check_status(sid) == "critical", message="failing")
        assert consul_double.service_ids() == []
    finally:
        server.stop()
