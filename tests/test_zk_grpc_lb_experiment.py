"""The six behaviours of the grpc-lb experiment on a real ZooKeeper, through naming.dial and the
demo's greeters (naming.register), with "ZooKeeper down" in place of "etcd down"."""

from __future__ import annotations

from naming._demo import Experiment
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
