"""The six behaviours of the grpc-lb experiment on a real ZooKeeper, through naming.dial and the
demo's greeters (naming.register), with "ZooKeeper down" in place of "etcd down"; and
naming.register_server with naming.dial on real gRPC servers."""

from __future__ import annotations

from typing import Any

import naming
from naming._demo import Experiment
from naming.testing import is_round_robin, wait_until
from naming.testing.servers import Harness, call_port, wait_for_server
from naming.testing.zookeeper import ZkServer


def test_the_six_behaviours_hold_on_zookeeper(zk_private: ZkServer) -> None:
    lines: list[str] = []
    target = f"zk://{zk_private.endpoint}/greeter?root=/experiment"
    results = Experiment(
        target, zk_private, lines.append, calls=300, registry_name="ZooKeeper"
    ).run()
    assert [r.behaviour[:2] for r in results] == ["1.", "2.", "3.", "4.", "5.", "6."]
    assert results[3].behaviour.startswith("4. ZooKeeper down")
    failed = [f"{r.behaviour}: {r.measured}" for r in results if not r.passed]
    assert not failed, "\n".join(lines)
    measured = [r.measured for r in results]
    assert measured[0] == "S1=100, S2=100, S3=100; failed=0"
    assert "S1=" not in measured[1] and measured[1].endswith("failed=0")
    assert measured[2] == "S1=100, S2=100, S3=100; failed=0"
    assert "S4 calls=0; S3 still listed=True" in measured[3] and "failed=0" in measured[3]
    assert measured[4] == "S1=100, S2=100, S4=100; failed=0; records=S1,S2,S4"
    assert measured[5].count("DEADLINE_EXCEEDED") == 3


def test_register_server_and_dial_round_robin_on_zookeeper(
    zk_server: ZkServer, zk_root: str
) -> None:
    """naming.register_server on real gRPC servers, naming.dial over them: both rotate; a server
    stopped through its registration is deregistered first, and the channel stops picking it."""
    target = f"zk://{zk_server.endpoint}/echo?root={zk_root}"
    grpc_servers: dict[str, Any] = {}
    with Harness() as harness:
        servers = harness.start_servers(
            2, services=lambda echo, grpc_server: grpc_servers.setdefault(echo.name, grpc_server)
        )
        serving = [
            naming.register_server(grpc_servers[s.name], target, s.address, ttl=4, signals=())
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
            assert serving[0].stop(grace=0.1).wait(10)  # deregistered first, then stopped
            wait_until(
                lambda: sorted(a.addr for a in channel.balancer.addresses) == [servers[1].address],
                message="s0 unlisted",
            )
            assert [call_port(channel) for _ in range(3)] == ["s1", "s1", "s1"]
        finally:
            for registration in serving:
                registration.stop(grace=0.1).wait(10)
