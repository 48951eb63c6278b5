"""gRPC's target forms, read by naming as grpcio reads them: checked against grpcio itself.

For each form, real gRPC servers listen on the addresses the target names (127.0.0.1, ::1, unix
sockets); a plain grpcio channel with round_robin and a naming.dial channel must reach the same
servers, and the first watcher batch must list the addresses grpcio dials, in its order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

import naming
from naming import parse_target
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.dns import DnsServer
from naming.testing.servers import FAST_RECONNECT, PORT

ROUND_ROBIN = (("grpc.lb_policy_name", "round_robin"),)


class NamedServer:
    """A grpc server answering PORT with its name, bound to ``bind`` (host:port or unix:path)."""

    def __init__(self, name: str, bind: str) -> None:
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"srv-{name}")
        self._server = grpc.server(self._executor)
        handler = grpc.method_handlers_generic_handler(
            "naming.test.Echo",
            {"Port": grpc.unary_unary_rpc_method_handler(lambda request, context: name.encode())},
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(bind)
        assert self.port != 0, f"cannot bind {bind}"
        self._server.start()

    def stop(self) -> None:
        self._server.stop(None).wait()
        self._executor.shutdown(wait=True)


@pytest.fixture
def servers() -> Iterator[list[NamedServer]]:
    started: list[NamedServer] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def sockets() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="naming-unix-") as directory:
        yield Path(directory)


def reached_by_grpcio(target: str, expected: int) -> set[str]:
    """The servers a plain grpcio round_robin channel reaches in enough calls to see them all."""
    seen: set[str] = set()
    with grpc.insecure_channel(target, options=ROUND_ROBIN + FAST_RECONNECT) as channel:
        call = channel.unary_unary(PORT)
        for _ in range(expected * 4):
            seen.add(call(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True).decode())
    return seen


def reached_by_naming(target: str, expected: int) -> set[str]:
    seen: set[str] = set()
    channel = naming.dial(target, balancer="round_robin", options=FAST_RECONNECT)
    try:
        call = channel.unary_unary(PORT)

        def all_seen() -> bool:
            seen.add(call(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True).decode())
            return len(seen) >= expected

        wait_until(all_seen, timeout=DEFAULT_TIMEOUT, message=f"servers of {target}")
    finally:
        channel.close()
    return seen


def first_batch(target: str) -> list[str]:
    with naming.resolve(target) as watcher:
        return [update.addr for update in watcher.next(timeout=DEFAULT_TIMEOUT)]


def check_form(target: str, names: set[str], addresses: list[str]) -> None:
    assert first_batch(target) == addresses
    assert reached_by_grpcio(target, len(names)) == names
    assert reached_by_naming(target, len(names)) == names


def test_ipv4_list(servers: list[NamedServer]) -> None:
    servers += [NamedServer(f"v4-{i}", "127.0.0.1:0") for i in range(2)]
    hostports = [f"127.0.0.1:{s.port}" for s in servers]
    target = "ipv4:" + ",".join(hostports)
    assert parse_target(target) == naming.Target("ipv4", "", ",".join(hostports))
    check_form(target, {"v4-0", "v4-1"}, hostports)
    check_form("ipv4:///" + ",".join(hostports), {"v4-0", "v4-1"}, hostports)


def test_ipv6_list(servers: list[NamedServer]) -> None:
    servers += [NamedServer(f"v6-{i}", "[::1]:0") for i in range(2)]
    hostports = [f"[::1]:{s.port}" for s in servers]
    target = "ipv6:" + ",".join(hostports)
    check_form(target, {"v6-0", "v6-1"}, hostports)


def test_unix_absolute_and_relative(servers: list[NamedServer], sockets: Path) -> None:
    path = sockets / "abs.sock"
    servers.append(NamedServer("unix-abs", f"unix:{path}"))
    assert parse_target(f"unix://{path}").endpoint == str(path)  # unix:///tmp/... keeps its /
    check_form(f"unix://{path}", {"unix-abs"}, [f"unix:{path}"])
    check_form(f"unix:{path}", {"unix-abs"}, [f"unix:{path}"])


def test_unix_relative_path(
    servers: list[NamedServer], sockets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sockets)  # a relative unix path is relative to the working directory
    servers.append(NamedServer("unix-rel", "unix:rel.sock"))
    check_form("unix:rel.sock", {"unix-rel"}, ["unix:rel.sock"])


@pytest.mark.parametrize(
    "form", ["localhost:{port}", "dns:///localhost:{port}", "dns:localhost:{port}"]
)
def test_localhost_through_the_system_resolver(servers: list[NamedServer], form: str) -> None:
    servers.append(NamedServer("local", "127.0.0.1:0"))
    target = form.format(port=servers[0].port)
    assert parse_target(target) == naming.Target("dns", "", f"localhost:{servers[0].port}")
    assert f"127.0.0.1:{servers[0].port}" in first_batch(target)
    # grpcio dials localhost's every address; only 127.0.0.1 listens, so both reach "local"
    assert reached_by_grpcio(target, 1) == {"local"}
    assert reached_by_naming(target, 1) == {"local"}


def test_dns_with_a_named_server(servers: list[NamedServer]) -> None:
    servers += [NamedServer(f"dns-{i}", "127.0.0.1:0") for i in range(2)]
    # grpcio dials a name's every address with one port: two loopback IPs, the same port
    port = servers[0].port
    servers.append(NamedServer("dns-other", f"127.0.0.2:{port}"))
    with DnsServer(ttl=2) as dns:
        dns.start()
        dns.set_hosts("hello.example.com", ["127.0.0.2", "127.0.0.1"])
        target = dns.target(f"hello.example.com:{port}")
        assert parse_target(target) == naming.Target(
            "dns", dns.address, f"hello.example.com:{port}"
        )
        # a stable order (sorted), whatever order the server gives
        check_form(target, {"dns-0", "dns-other"}, [f"127.0.0.1:{port}", f"127.0.0.2:{port}"])


def test_default_port_is_443() -> None:
    assert first_batch("dns:///127.0.0.1") == ["127.0.0.1:443"]
    assert first_batch("[::1]") == ["[::1]:443"]
    assert first_batch("ipv4:127.0.0.1:80") == ["127.0.0.1:80"]


@pytest.mark.parametrize(
    "target",
    ["ipv4:127.0.0.1", "ipv4:[::1]:80", "ipv6:127.0.0.1:80", "unix://host/tmp/sock", "ipv4:x:1"],
)
def test_bad_address_targets(target: str) -> None:
    with pytest.raises(naming.TargetError):
        naming.resolve(target)


def test_round_trip_of_the_new_forms() -> None:
    for text in ["unix:///tmp/a.sock", "unix:rel.sock", "ipv6:[::1]:5", "unix-abstract:name"]:
        parsed = parse_target(text)
        assert parse_target(str(parsed)) == parsed
    assert str(parse_target("unix:///tmp/a.sock")) == "unix:///tmp/a.sock"
    assert str(parse_target("unix:rel.sock")) == "unix:rel.sock"
