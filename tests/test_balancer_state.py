"""What a policy builds on: per-address state, rebuild(), the call's PickInfo, the put contract.

Toy policies written here the way least_request, p2c_ewma and ring_hash will be written, driven by
ManualResolver and real threads.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from backends.manual import ManualResolver
from balancers import (
    DoneInfo,
    InFlight,
    Picker,
    PickerBalancer,
    PickerState,
    PickFirst,
    PickInfo,
    Put,
    RoundRobin,
    TrackedPut,
)
from naming import Address, BalancerClosedError, Update
from tests.conftest import DEFAULT_TIMEOUT

A, B, C = Address("a:1"), Address("b:1"), Address("c:1")
P = TypeVar("P", bound=PickerBalancer)


@pytest.fixture
def resolver() -> Iterator[ManualResolver]:
    with ManualResolver() as manual:
        yield manual


def started(balancer: P) -> P:
    balancer.start("manual:///test")
    notifications = balancer.notify()
    assert notifications is not None
    notifications.get(timeout=DEFAULT_TIMEOUT)
    return balancer


def push(balancer: PickerBalancer, resolver: ManualResolver, updates: list[Update]) -> None:
    """Push one batch and wait until the balancer has applied it (it notifies after each)."""
    resolver.update(updates)
    notifications = balancer.notify()
    assert notifications is not None
    notifications.get(timeout=DEFAULT_TIMEOUT)


@contextlib.contextmanager
def running(balancer: P) -> Iterator[P]:
    try:
        yield started(balancer)
    finally:
        with contextlib.suppress(BalancerClosedError):
            balancer.close()


# -- per-address state --------------------------------------------------------------------------


@dataclass(eq=False)
class _Stats:
    address: Address
    serial: int


class _Recorder(RoundRobin):
    """round_robin with a state per address, recording what each build_picker() got."""

    def __init__(self, resolver: ManualResolver | None = None) -> None:
        super().__init__(resolver)
        self.serials = itertools.count()
        self.built: list[tuple[list[Address], list[Any], Picker | None]] = []

    def new_address_state(self, address: Address) -> _Stats:
        return _Stats(address, next(self.serials))

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        self.built.append((list(state.ready), list(state.states), previous))
        return super().build_picker(state, previous)


def test_state_survives_rebuilds_when_other_addresses_join_or_leave(
    resolver: ManualResolver,
) -> None:
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B)])
        a_stats = balancer.address_state(A)
        assert isinstance(a_stats, _Stats) and a_stats.address == A
        balancer.up(A)
        balancer.up(B)
        balancer.get()
        push(balancer, resolver, [Update.add(C)])
        balancer.up(C)
        balancer.get()
        push(balancer, resolver, [Update.delete(B)])
        balancer.get()
        assert balancer.address_state(A) is a_stats
        builds = balancer.built
        assert [ready for ready, _, _ in builds] == [[A, B], [A, B, C], [A, C]]
        for ready, states, _ in builds:
            assert [s.address for s in states] == ready  # aligned with ready
        assert [states[0] for _, states, _ in builds] == [a_stats] * 3  # the same object each time


def test_state_is_pruned_on_delete_fresh_on_readd_and_kept_on_duplicate_add(
    resolver: ManualResolver,
) -> None:
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B)])
        first = balancer.address_state(A)
        push(balancer, resolver, [Update.add(A)])  # duplicate ADD: skipped, state kept
        assert balancer.address_state(A) is first
        push(balancer, resolver, [Update.delete(A)])
        with pytest.raises(KeyError):
            balancer.address_state(A)
        push(balancer, resolver, [Update.add(A)])
        fresh = balancer.address_state(A)
        assert fresh is not first and (first.serial, fresh.serial) == (0, 2)
        balancer.up(A)
        balancer.get()
        assert balancer.built[-1][1] == [fresh]
        with pytest.raises(KeyError):
            balancer.address_state(C)


def test_state_of_a_ready_address_deleted_while_up_is_pruned_from_the_picker(
    resolver: ManualResolver,
) -> None:
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
        for address in (A, B, C):
            balancer.up(address)
        balancer.get()
        push(balancer, resolver, [Update.delete(B), Update.add(B)])
        balancer.up(B)
        balancer.get()
        ready, states, _ = balancer.built[-1]
        assert ready == [A, C, B]
        assert [s.serial for s in states] == [0, 2, 3]


def test_states_stay_aligned_with_thousands_of_ready_addresses_across_blocks(
    resolver: ManualResolver,
) -> None:
    addresses = [Address(f"10.0.{i // 250}.{i % 250}:80") for i in range(1200)]
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(a) for a in addresses])
        for address in addresses[::2] + addresses[1::2]:  # up out of order: blocks split
            balancer.up(address)
        push(balancer, resolver, [Update.delete(a) for a in addresses[::3]])  # blocks join
        balancer.get()
        ready, states, _ = balancer.built[-1]
        expected = [a for i, a in enumerate(addresses) if i % 3]
        assert ready == expected
        assert [s.address for s in states] == expected
        assert [s.serial for s in states] == [i for i in range(1200) if i % 3]


@pytest.mark.parametrize("cls", [RoundRobin, PickFirst])
def test_a_policy_without_state_gets_nones_and_address_state_none(
    cls: type[PickerBalancer], resolver: ManualResolver
) -> None:
    seen: list[Sequence[Any]] = []

    class Peek(cls):  # type: ignore[valid-type,misc]
        def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
            seen.append(state.states)
            return super().build_picker(state, previous)  # type: ignore[no-any-return]

    with running(Peek(resolver)) as balancer:
        assert balancer._states is None  # no store at all
        push(balancer, resolver, [Update.add(A), Update.add(B)])
        assert balancer.address_state(A) is None
        with pytest.raises(KeyError):
            balancer.address_state(C)
        balancer.up(A)
        balancer.up(B)
        balancer.get()
    assert [list(states) for states in seen] == [[None, None]]
    assert seen[0][-1] is None and seen[0][0:2] == (None, None)
    with pytest.raises(IndexError):
        seen[0][2]


def test_without_resolver_the_target_gets_a_state() -> None:
    balancer = _Recorder()
    balancer.start("10.0.0.1:50051")
    assert balancer.address_state(Address("10.0.0.1:50051")).serial == 0
    balancer.close()


# -- rebuild() ----------------------------------------------------------------------------------


def test_rebuild_gives_a_new_picker_with_the_same_ready_set(resolver: ManualResolver) -> None:
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B)])
        balancer.up(A)
        balancer.up(B)
        assert [balancer.get()[0] for _ in range(3)] == [A, B, A]
        builds = balancer.built
        assert len(builds) == 1
        balancer.rebuild()
        balancer.rebuild()  # requests before the next get() cost one build
        assert len(builds) == 1  # nothing is built until a pick needs it
        assert [balancer.get()[0] for _ in range(3)] == [B, A, B]  # the rotation carries on
        assert len(builds) == 2
        (ready1, states1, _), (ready2, states2, previous) = builds
        assert ready1 == ready2 == [A, B] and states1 == states2
        assert previous is not None
        balancer.get()
        assert len(builds) == 2


def test_rebuild_from_many_threads_while_others_pick(resolver: ManualResolver) -> None:
    with running(_Recorder(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
        for address in (A, B, C):
            balancer.up(address)
        errors: list[BaseException] = []
        counts: Counter[Address] = Counter()
        lock = threading.Lock()

        def rebuilder() -> None:
            try:
                for _ in range(300):
                    balancer.rebuild()
            except BaseException as exc:
                errors.append(exc)

        def caller() -> None:
            mine: Counter[Address] = Counter()
            try:
                for _ in range(1500):
                    mine[balancer.get()[0]] += 1
            except BaseException as exc:
                errors.append(exc)
            with lock:
                counts.update(mine)

        threads = [threading.Thread(target=rebuilder, name="naming-test-rebuild") for _ in range(4)]
        threads += [threading.Thread(target=caller, name="naming-test-caller") for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT * 3)
        assert not errors
        assert not any(t.is_alive() for t in threads)
        assert sum(counts.values()) == 6000 and set(counts) == {A, B, C}
        builds = balancer.built
        assert 1 <= len(builds) <= 1 + 1200
        assert all(ready == [A, B, C] for ready, _, _ in builds)
        before = len(builds)
        balancer.rebuild()
        balancer.get()
        assert len(builds) == before + 1


# -- PickInfo: a policy that reads the call's metadata ------------------------------------------


class _ZonePicker(Picker):
    def __init__(self, ready: Sequence[Address]) -> None:
        self.ready = ready
        self.by_zone = {a.metadata.get("zone"): a for a in ready}

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        zone = None if info is None else info.value("x-zone")
        return self.by_zone.get(zone, self.ready[0]), None


class _ByZone(PickerBalancer):
    name = "by_zone"

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return _ZonePicker(state.ready)


def test_a_policy_picks_by_a_metadata_key_of_the_call(resolver: ManualResolver) -> None:
    east, west = Address("e:1", {"zone": "east"}), Address("w:1", {"zone": "west"})
    with running(_ByZone(resolver)) as balancer:
        push(balancer, resolver, [Update.add(east), Update.add(west)])
        balancer.up(east)
        balancer.up(west)

        def pick(*metadata: tuple[str, str | bytes]) -> Address:
            return balancer.get(info=PickInfo("/pkg.Svc/Get", metadata))[0]

        assert pick(("X-Zone", "west")) == west  # keys compare in lower case
        assert pick(("x-user", "1"), ("x-zone", "east"), ("x-zone", "west")) == east  # the first
        assert pick(("x-zone", "north")) == east
        assert pick() == east
        assert balancer.get()[0] == east  # a legacy get() without info still works
        assert (
            balancer.get(
                blocking_wait=True,
                timeout=DEFAULT_TIMEOUT,
                info=PickInfo("/pkg.Svc/Get", (("x-zone", "west"),)),
            )[0]
            == west
        )


@pytest.mark.parametrize("cls", [RoundRobin, PickFirst])
def test_builtin_policies_pick_the_same_with_or_without_info(
    cls: type[PickerBalancer], resolver: ManualResolver
) -> None:
    info = PickInfo("/pkg.Svc/Get", (("x-zone", "west"),))
    with running(cls(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
        for address in (A, B, C):
            balancer.up(address)
        got = [balancer.get(info=info if i % 2 else None)[0].addr for i in range(6)]
    expected = {RoundRobin: ["a:1", "b:1", "c:1"] * 2, PickFirst: ["a:1"] * 6}[cls]
    assert got == expected


# -- a toy least_request: in-flight counts through the store and a wrapped put ------------------


class _LeastPicker(Picker):
    def __init__(self, ready: Sequence[Address], states: Sequence[InFlight]) -> None:
        self.pairs = list(zip(ready, states, strict=True))

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        address, counter = min(self.pairs, key=lambda pair: pair[1].count)
        return address, counter.begin()


class _LeastRequest(PickerBalancer):
    name = "toy_least_request"

    def new_address_state(self, address: Address) -> InFlight:
        return InFlight()

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return _LeastPicker(state.ready, state.states)


def test_least_request_counts_are_exact_after_concurrent_picks_and_puts(
    resolver: ManualResolver,
) -> None:
    with running(_LeastRequest(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B), Update.add(C)])
        for address in (A, B, C):
            balancer.up(address)
        open_puts: list[tuple[Address, Put]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def caller(seed: int) -> None:
            mine: list[tuple[Address, Put]] = []
            try:
                start.wait(DEFAULT_TIMEOUT)
                for i in range(600):
                    address, put = balancer.get(info=PickInfo("/pkg.Svc/Get"))
                    assert put is not None
                    if (i + seed) % 3 == 0:
                        put(DoneInfo(0, 0.001))  # the call ran
                        put(DoneInfo(0, 0.001))  # a second put is ignored
                    elif (i + seed) % 3 == 1:
                        put.abandon()  # type: ignore[attr-defined]  # never ran there
                        put(DoneInfo(0, 0.0))  # ignored after abandon()
                    else:
                        mine.append((address, put))  # still in flight
            except BaseException as exc:
                errors.append(exc)
            with lock:
                open_puts.extend(mine)

        threads = [
            threading.Thread(target=caller, args=(n,), name="naming-test-caller") for n in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT * 3)
        assert not errors
        assert not any(t.is_alive() for t in threads)
        assert len(open_puts) == 1600  # 200 of every 600 picks per thread stay open
        in_flight = Counter(address for address, _ in open_puts)
        counts = {a: balancer.address_state(a).count for a in (A, B, C)}
        assert counts == dict(in_flight)
        assert set(in_flight) == {A, B, C}
        for _, put in open_puts:
            put()
        assert [balancer.address_state(a).count for a in (A, B, C)] == [0, 0, 0]


def test_least_request_state_survives_a_rebuild_and_restarts_after_readd(
    resolver: ManualResolver,
) -> None:
    with running(_LeastRequest(resolver)) as balancer:
        push(balancer, resolver, [Update.add(A), Update.add(B)])
        balancer.up(A)
        balancer.up(B)
        held = [balancer.get()[1] for _ in range(4)]
        assert [balancer.address_state(a).count for a in (A, B)] == [2, 2]
        push(balancer, resolver, [Update.add(C)])  # C joins: a new picker, the same counters
        balancer.up(C)
        assert [balancer.get()[0] for _ in range(2)] == [C, C]
        assert [balancer.address_state(a).count for a in (A, B, C)] == [2, 2, 2]
        push(balancer, resolver, [Update.delete(A), Update.add(A)])
        assert balancer.address_state(A).count == 0  # a fresh counter after the re-ADD
        for put in held:
            assert put is not None
            put()
        assert [balancer.address_state(a).count for a in (A, B)] == [0, 0]


def test_tracked_put_ends_once_and_forwards_to_the_wrapped_put() -> None:
    calls: list[object] = []

    class Inner:
        def __call__(self, info: DoneInfo | None = None) -> None:
            calls.append(info)

        def abandon(self) -> None:
            calls.append("abandon")

    counter = InFlight()
    ran, unused, plain = counter.begin(Inner()), counter.begin(Inner()), counter.begin(calls.append)
    assert isinstance(ran, TrackedPut) and counter.count == 3
    done = DoneInfo(0, 0.5)
    ran(done)
    ran.abandon()
    unused.abandon()
    unused(done)
    plain.abandon()  # the wrapped put has no abandon(): it is not called at all
    assert counter.count == 0
    assert calls == [done, "abandon"]
