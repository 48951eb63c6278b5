"""register() refuses, at the call, what no client could use; nothing is published when it does."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import naming
from backends.manual import ManualResolver
from naming import Address
from naming.core._checks import host_address


@pytest.fixture
def published() -> Iterator[ManualResolver]:
    resolver = ManualResolver(name="checked")
    yield resolver
    resolver.close()


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("10.0.0.1", "has no port"),
        ("10.0.0.1:0", "port '0' is not a number from 1 to 65535"),
        ("10.0.0.1:65536", "port '65536' is not a number from 1 to 65535"),
        ("10.0.0.1:\u0665\u0660", "is not a number from 1 to 65535"),  # Arabic-Indic digits
        ("my host:50051", "'my host' is not a host name or IP address"),
        (" 10.0.0.1:50051", "is not a host name or IP address"),
        ("10.0.0.1:50051 ", "port '50051 ' is not a number"),
        ("caf\u00e9:50051", "is not a host name or IP address"),
        ("0.0.0.0:50051", "is a bind-all address that no client can dial"),
        ("[::]:50051", "is a bind-all address that no client can dial"),
        (":50051", "is a bind-all address that no client can dial"),
    ],
)
def test_an_address_a_resolver_would_skip_is_refused_and_nothing_is_published(
    published: ManualResolver, addr: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        naming.register("manual:///checked", addr)
    assert str(raised.value).startswith("register: ")
    assert published.addresses == []


def test_bind_all_host_puts_this_hosts_address_in_place_of_a_bind_all_one(
    published: ManualResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMING_HOST_IP", "127.0.0.7")
    for addr in ("0.0.0.0:50051", "[::]:50052", ":50053"):
        registration = naming.register("manual:///checked", addr, bind_all="host")
        assert registration.address == Address(f"127.0.0.7:{addr.rsplit(':', 1)[1]}")
    assert published.addresses == [
        Address("127.0.0.7:50051"),
        Address("127.0.0.7:50052"),
        Address("127.0.0.7:50053"),
    ]
    with pytest.raises(ValueError, match="bind_all must be one of"):
        naming.register("manual:///checked", "10.0.0.1:1", bind_all="yes")


def _lookup(*addresses: tuple[int, str]):  # type: ignore[no-untyped-def]
    def lookup(host: str, port: object, family: int, kind: int) -> list[tuple[object, ...]]:
        return [(fam, kind, 0, "", (addr, 0)) for fam, addr in addresses]

    return lookup


def test_this_hosts_address_skips_loopback_and_brackets_ipv6() -> None:
    name = lambda: "box"  # noqa: E731
    found = host_address(
        {}, _lookup((socket.AF_INET, "127.0.1.1"), (socket.AF_INET, "10.1.2.3")), name
    )
    assert found == "10.1.2.3"
    assert host_address({}, _lookup((socket.AF_INET6, "fd00::5")), name) == "[fd00::5]"
    assert host_address({"POD_IP": "10.9.9.9"}, _lookup(), name) == "10.9.9.9"
    with pytest.raises(ValueError, match="only loopback addresses; set NAMING_HOST_IP"):
        host_address({}, _lookup((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")), name)


@pytest.mark.parametrize("ttl", [0, -1, 0.5, 86_401, 1e20, float("inf"), float("nan"), True, "10"])
def test_a_ttl_out_of_bounds_is_refused(published: ManualResolver, ttl: object) -> None:
    with pytest.raises(
        ValueError, match="ttl must be a positive number of seconds, from 1 to 86400"
    ):
        naming.register("manual:///checked", "10.0.0.1:1", ttl=ttl)  # type: ignore[arg-type]
    assert published.addresses == []


@pytest.mark.parametrize("ttl", [1, 2.5, 86_400])
def test_a_ttl_within_bounds_is_taken(published: ManualResolver, ttl: float) -> None:
    with naming.register("manual:///checked", "10.0.0.1:1", ttl=ttl):
        assert published.addresses == [Address("10.0.0.1:1")]


@pytest.mark.parametrize(
    ("metadata", "error"),
    [({"zone": object()}, TypeError), ({"weight": float("nan")}, ValueError)],
)
def test_metadata_that_is_not_json_is_refused_naming_the_backend(
    published: ManualResolver, metadata: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"^manual: metadata of '10\.0\.0\.1:1' is not JSON"):
        naming.register("manual:///checked", "10.0.0.1:1", metadata)
    assert published.addresses == []


def test_register_server_refuses_a_bad_address_before_it_touches_the_server(
    published: ManualResolver,
) -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the server was touched: {name}")

    with pytest.raises(ValueError, match="bind-all address"):
        naming.register_server(Untouchable(), "manual:///checked", "0.0.0.0:50051", signals=())
    assert published.addresses == []
