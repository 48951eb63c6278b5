"""The options every PickerBalancer takes: metadata filters and deterministic subsets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

import balancers
from balancers._select import PROCESS_ID, Selection
from naming import Address, NoAddressAvailableError, Update
from naming.testing.servers import Harness, call_port, wait_until

from ._policies import driven, picks, push

SERVERS = [Address(f"10.2.{i // 250}.{i % 250}:7000") for i in range(100)]


def v(addr: str, version: str) -> Address:
    return Address(addr, {"version": version})


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


@pytest.mark.parametrize("name", ["round_robin", "pick_first", "random", "p2c_ewma", "ring_hash"])
def test_a_filter_keeps_only_matching_addresses_and_the_channel_connects_only_to_them(
    name: str,
) -> None:
    listed = [v("a:1", "v1"), v("b:1", "v2"), v("c:1", "v2"), Address("d:1")]
    with driven(name, listed, filter={"version": "v2"}) as (balancer, resolver, fake):
        assert balancer.addresses == [listed[1], listed[2]]
        assert fake.connected == {listed[1], listed[2]} and fake.latest == listed[1:3]
        assert set(picks(balancer, 50)) <= {"b:1", "c:1"}
        push(balancer, resolver, fake, [Update.add(v("e:1", "v1")), Update.add(v("f:1", "v2"))])
        assert balancer.addresses == [listed[1], listed[2], v("f:1", "v2")]


def test_a_callable_filter_and_the_fallback() -> None:
    listed = [v("a:1", "v1"), v("b:1", "v1")]
    with driven("round_robin", listed, filter=lambda a: a.addr.startswith("b")) as (b, _, _f):
        assert picks(b, 3) == ["b:1"] * 3
    with driven("round_robin", listed, filter={"version": "v2"}) as (balancer, resolver, fake):
        assert balancer.addresses == []
        with pytest.raises(NoAddressAvailableError):
            balancer.get()
    with driven("round_robin", listed, filter={"version": "v2"}, filter_fallback=True) as (
        balancer,
        resolver,
        fake,
    ):
        assert balancer.addresses == listed  # nothing matches: every address
        push(balancer, resolver, fake, [Update.add(v("c:1", "v2"))])
        assert balancer.addresses == [v("c:1", "v2")]  # something matches: only that
        assert fake.connected == {v("c:1", "v2")}
        push(balancer, resolver, fake, [Update.delete(v("c:1", "v2"))])
        assert balancer.addresses == listed


def test_subsets_by_index_spread_clients_evenly_and_move_by_about_one() -> None:
    subsets = []
    for index in range(100):
        selection = Selection("t", subset_size=10, client_index=index, client_count=100)
        subsets.append(set(selection.select(SERVERS)))
    assert all(len(s) == 10 for s in subsets)
    per_server = Counter(a for s in subsets for a in s)
    assert len(per_server) == 100 and set(per_server.values()) == {10}  # max/mean 1.0
    joined = [*SERVERS, Address("10.9.9.9:7000")]
    moved = []
    for index in range(100):
        selection = Selection("t", subset_size=10, client_index=index, client_count=100)
        moved.append(len(subsets[index] - set(selection.select(joined))))
    assert max(moved) <= 2 and sum(moved) / 100 <= 1.2, Counter(moved)


def test_subsets_by_id_are_stable_and_one_join_changes_at_most_one_member() -> None:
    def subset(client: str, servers: list[Address]) -> set[Address]:
        return set(Selection("t", subset_size=10, client_id=client).select(servers))

    assert subset("host-7", SERVERS) == subset("host-7", list(reversed(SERVERS)))
    assert subset("host-7", SERVERS) != subset("host-8", SERVERS)
    per_server = Counter(a for i in range(100) for a in subset(f"host-{i}", SERVERS))
    assert max(per_server.values()) / 10 <= 2.5  # looser than by index: a binomial spread
    joined = [*SERVERS, Address("10.9.9.9:7000")]
    left = SERVERS[1:]
    for i in range(100):
        before = subset(f"host-{i}", SERVERS)
        assert len(before - subset(f"host-{i}", joined)) <= 1
        assert len(before - subset(f"host-{i}", left)) <= 1
    assert Selection("t", subset_size=3).client_id == PROCESS_ID


def test_a_subset_through_a_balancer_follows_membership() -> None:
    servers = SERVERS[:20]
    options = {"subset_size": 4, "client_index": 3, "client_count": 5}
    with driven("least_request", servers, **options) as (balancer, resolver, fake):
        first = set(balancer.addresses)
        assert len(first) == 4 and fake.connected == first
        assert set(picks(balancer, 100)) <= {a.addr for a in first}
        gone = next(iter(first))
        push(balancer, resolver, fake, [Update.delete(gone)])
        second = set(balancer.addresses)
        assert len(second) == 4 and gone not in second and len(first & second) >= 2


def test_the_options_are_checked() -> None:
    bad = [
        ({"subset_size": 0}, ValueError),
        ({"subset_size": 2, "client_index": 2, "client_count": 2}, ValueError),
        ({"subset_size": 2, "client_index": 0}, ValueError),
        ({"subset_size": 2, "client_index": 0, "client_count": 2, "client_id": "x"}, ValueError),
        ({"client_id": "x"}, ValueError),
        ({"subset_size": 2, "client_id": 7}, TypeError),
        ({"filter": {}}, TypeError),
        ({"filter": "v2"}, TypeError),
    ]
    for options, error in bad:
        for name in ("round_robin", "weighted_round_robin", "ring_hash"):
            with pytest.raises(error, match=f"{name}: "):
                balancers.create(name, **options)
    with pytest.raises(TypeError, match="subset"):
        balancers.create("random", subsets=2)


def test_the_channel_connects_only_to_its_subset(harness: Harness) -> None:
    servers = harness.start_servers(6)
    _, target = harness.manual(servers)
    channel = harness.dial(target, balancer="round_robin", subset_size=2, client_id="client-a")
    want = Selection("t", subset_size=2, client_id="client-a").select(
        [Address(s.address) for s in servers]
    )
    names = {s.name for s in servers if Address(s.address) in want}
    wait_until(lambda: {call_port(channel, wait_for_ready=True) for _ in range(6)} == names)
    assert set(channel.subchannels()) == set(want)
    assert sum(s.calls for s in servers if s.name not in names) == 0


def test_the_channel_connects_only_to_filtered_addresses(harness: Harness) -> None:
    servers = harness.start_servers(3)
    resolver, target = harness.manual()
    channel = harness.dial(target, balancer="p2c_ewma", filter={"version": "v2"})
    listed = [v(s.address, "v2" if s.name != "s1" else "v1") for s in servers]
    resolver.update([Update.add(a) for a in listed])
    wait_until(lambda: {call_port(channel, wait_for_ready=True) for _ in range(20)} == {"s0", "s2"})
    assert set(channel.subchannels()) == {listed[0], listed[2]}
    assert servers[1].calls == 0
