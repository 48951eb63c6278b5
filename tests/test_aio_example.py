"""examples/helloworld_aio run as its README says: grpc.aio servers registered in a real etcd, and
the asyncio client over naming.aio.dial."""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import naming
from naming.testing import DEFAULT_TIMEOUT
from naming.testing.etcd import EtcdServer
from tests.test_channel_stubs import Programs, serving_address

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helloworld_aio"


@pytest.fixture
def programs(stubs_dir: Path) -> Iterator[Programs]:
    started = Programs(stubs_dir, EXAMPLE)
    try:
        yield started
    finally:
        started.close()


def replies(output: str) -> Counter[str]:
    """The client's last line, ``replies: a=1, b=2``, as a Counter."""
    last = output.strip().splitlines()[-1]
    assert last.startswith("replies: "), output
    return Counter({k: int(v) for k, v in re.findall(r"([^ ,=]+)=(\d+)", last)})


def test_helloworld_aio_balances_and_a_stopped_server_deregisters(
    programs: Programs, etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    target = f"etcd://{etcd_server.endpoint}/greeter?prefix={etcd_prefix}"
    servers = [
        programs.start("server.py", "--port", "0", "--name", f"g{i}", "--register", target)
        for i in range(3)
    ]
    addresses = [serving_address(server) for server in servers]
    watcher = naming.resolve(target)
    try:
        seen: set[str] = set()
        for _ in range(20):  # the three records, in at most a few batches
            seen |= {u.address.addr for u in watcher.next(DEFAULT_TIMEOUT)}
            if seen == set(addresses):
                break
        assert seen == set(addresses)
        client = ("client.py", target, "--count", "30", "--concurrency", "3", "--interval", "0")
        counts = replies(programs.run(*client))
        assert set(counts) == {"g0", "g1", "g2"} and sum(counts.values()) == 30

        servers[1].send_signal(signal.SIGTERM)
        rest, _ = servers[1].communicate(timeout=DEFAULT_TIMEOUT)
        assert servers[1].returncode == 0, rest
        assert "greeter g1 stopped" in rest
        gone = watcher.next(DEFAULT_TIMEOUT)
        assert [(u.op.name, u.address.addr) for u in gone] == [("DELETE", addresses[1])]
        counts = replies(programs.run(*client))
        assert set(counts) == {"g0", "g2"} and sum(counts.values()) == 30
    finally:
        watcher.close()
