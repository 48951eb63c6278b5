"""random, weighted_round_robin, least_request, p2c_ewma and ring_hash through FakeChannel.

Exact counts where a policy is deterministic; bounds with a fixed seed where it is not.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import Counter
from typing import Any

import pytest

import balancers
from balancers import DoneInfo, InFlight, PickInfo
from balancers.p2cewma import AddressStats
from balancers.ringhash import RingHashPicker
from naming import Address, NamingError, Update
from naming.testing import DEFAULT_TIMEOUT

from ._policies import driven, keyed, picks, push

A, B, C, D = (Address(f"10.0.0.{i}:50051") for i in range(1, 5))
POLICIES = ["random", "weighted_round_robin", "least_request", "p2c_ewma", "ring_hash"]


def weighted(addr: str, weight: Any) -> Address:
    return Address(addr, {"weight": weight})


class Code:
    """A stand-in for a grpc.StatusCode (balancers read only its name)."""

    def __init__(self, name: str) -> None:
        self.name = name


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- every policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_is_installed_and_picks_only_connected_addresses(name: str) -> None:
    options = {} if name == "weighted_round_robin" else {"seed": 3}
    with driven(name, [A, B, C], **options) as (balancer, _, fake):
        assert balancer.name == name
        assert set(picks(balancer, 300, keyed("x-user-id", "u"))) <= {A.addr, B.addr, C.addr}
        fake.down(B)
        chosen = Counter(picks(balancer, 300))
        assert B.addr not in chosen and set(chosen) <= {A.addr, C.addr}


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_picks_from_many_threads_while_the_set_changes(name: str) -> None:
    extra = [Address(f"10.0.1.{i}:50051") for i in range(8)]
    errors: list[BaseException] = []
    seen: list[Counter[str]] = []
    stop = threading.Event()
    with driven(name, [A, B]) as (balancer, resolver, fake):

        def work(worker: int) -> None:
            counts: Counter[str] = Counter()
            try:
                for i in range(20_000):
                    if stop.is_set():
                        break
                    address, put = balancer.get(info=keyed("x-user-id", f"user-{i % 50}"))
                    counts[address.addr] += 1
                    if put is not None:
                        put(DoneInfo(None, 0.001 * (1 + worker % 3)))
            except BaseException as exc:
                errors.append(exc)
            seen.append(counts)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for address in extra:
            push(balancer, resolver, fake, [Update.add(address)])
        for address in extra[:6]:
            push(balancer, resolver, fake, [Update.delete(address)])
        stop.set()
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT)
            assert not thread.is_alive()
        assert errors == []
        total: Counter[str] = sum(seen, Counter())
        assert set(total) <= {a.addr for a in (A, B, *extra)}
        assert {A.addr, B.addr} <= set(total)
        for address in (A, B, *extra[6:]):
            state = balancer.address_state(address)
            flight = state.in_flight if isinstance(state, AddressStats) else state
            if isinstance(flight, InFlight):
                assert flight.count == 0  # every pick ended exactly once


# -- random ------------------------------------------------------------------------------------


def test_random_is_uniform_within_five_sigma_with_a_fixed_seed() -> None:
    with driven("random", [A, B, C], seed=7) as (balancer, _, _fake):
        counts = Counter(picks(balancer, 30_000))
    assert set(counts) == {A.addr, B.addr, C.addr}
    assert all(abs(n - 10_000) <= 410 for n in counts.values()), counts  # sigma = 81.6


def test_random_with_the_same_seed_repeats_its_choices() -> None:
    runs = []
    for _ in range(2):
        with driven("random", [A, B, C, D], seed=11) as (balancer, _, _fake):
            runs.append(picks(balancer, 200))
    assert runs[0] == runs[1] and len(set(runs[0])) == 4


# -- weighted_round_robin ----------------------------------------------------------------------


def test_wrr_weights_1_2_7_give_exactly_100_200_700_interleaved() -> None:
    servers = [weighted("a:1", 1), weighted("b:1", "2"), weighted("c:1", 7)]
    with driven("weighted_round_robin", servers) as (balancer, _, _fake):
        chosen = picks(balancer, 1000)
    assert Counter(chosen) == {"a:1": 100, "b:1": 200, "c:1": 700}
    for start in range(0, 1000, 10):  # every round of 10 holds the weights exactly
        assert Counter(chosen[start : start + 10]) == {"a:1": 1, "b:1": 2, "c:1": 7}
    runs, longest = 1, 1
    for before, after in itertools.pairwise(chosen):
        runs = runs + 1 if before == after else 1
        longest = max(longest, runs)
    assert longest == 4  # never seven c's in a row
    assert chosen[:10] == ["c:1", "c:1", "b:1", "c:1", "a:1", "c:1", "c:1", "b:1", "c:1", "c:1"]


def test_wrr_is_exact_from_many_threads() -> None:
    servers = [weighted("a:1", 1), weighted("b:1", 2), weighted("c:1", 7)]
    results: list[list[str]] = []
    with driven("weighted_round_robin", servers) as (balancer, _, _fake):
        threads = [
            threading.Thread(target=lambda: results.append(picks(balancer, 1000))) for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEFAULT_TIMEOUT)
    assert Counter(addr for run in results for addr in run) == {
        "a:1": 800,
        "b:1": 1600,
        "c:1": 5600,
    }


def test_wrr_missing_weight_is_1_and_a_bad_one_is_1_with_one_warning_per_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = [weighted("zero:1", 0), weighted("text:1", "x"), weighted("half:1", 2.5)]
    bad.append(weighted("bool:1", True))
    servers = [Address("plain:1"), weighted("three:1", 3), *bad]
    with (
        caplog.at_level(logging.WARNING, logger="naming.balancers"),
        driven("weighted_round_robin", servers) as (balancer, resolver, fake),
    ):
        first = Counter(picks(balancer, 80))
        push(balancer, resolver, fake, [Update.add(D)])  # a rebuild: no new warnings
        fake.down(D)
        picks(balancer, 10)
    assert first == {"plain:1": 10, "three:1": 30, "zero:1": 10, "text:1": 10, "half:1": 10,
                     "bool:1": 10}  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    for address in bad:
        assert sum(address.addr in w for w in warnings) == 1
    assert all(w.startswith("weighted_round_robin: ") for w in warnings)


def test_wrr_a_weight_change_rebuilds_the_picker() -> None:
    old, new = weighted("b:1", 1), weighted("b:1", 3)
    with driven("weighted_round_robin", [weighted("a:1", 1), old]) as (balancer, resolver, fake):
        assert Counter(picks(balancer, 100)) == {"a:1": 50, "b:1": 50}
        push(balancer, resolver, fake, [Update.delete(old), Update.add(new)])
        assert Counter(picks(balancer, 100)) == {"a:1": 25, "b:1": 75}


# -- least_request -----------------------------------------------------------------------------


def test_least_request_avoids_the_loaded_address_within_bounds() -> None:
    with driven("least_request", [A, B], seed=5) as (balancer, _, _fake):
        held = []
        while len(held) < 6:  # load B with six calls that stay in flight
            address, put = balancer.get()
            assert put is not None
            if address == B:
                held.append(put)
            else:
                put(None)
        assert balancer.address_state(B).count == 6
        counts = Counter(picks(balancer, 4000))
        # B wins only when both draws are B: 1/4 of the picks
        assert abs(counts[B.addr] - 1000) <= 140, counts
        for put in held:
            put(DoneInfo())
        assert balancer.address_state(B).count == 0


def test_least_request_choice_count_option() -> None:
    with driven("least_request", [A, B], seed=5, choice_count=20) as (balancer, _, _fake):
        loaded, put = balancer.get()  # stays in flight
        counts = Counter(picks(balancer, 1000))
        assert put is not None
        put(None)
    assert counts == {({A, B} - {loaded}).pop().addr: 1000}  # 20 draws all on it: 1 in 10**6
    for bad in (1, 0, 2.0, "2"):
        with pytest.raises(ValueError, match="least_request: choice_count"):
            balancers.create("least_request", choice_count=bad)


def test_least_request_counters_survive_rebuilds() -> None:
    with driven("least_request", [A, B], seed=1) as (balancer, resolver, fake):
        address, put = balancer.get()
        assert put is not None
        state = balancer.address_state(address)
        push(balancer, resolver, fake, [Update.add(C)])
        fake.down(C)
        picks(balancer, 20)
        assert balancer.address_state(address) is state and state.count == 1
        put.abandon()
        put(None)  # a second end does nothing
        assert state.count == 0


# -- p2c_ewma ----------------------------------------------------------------------------------


def warm(balancer: Any, address: Address, latency: float) -> None:
    while True:
        chosen, put = balancer.get()
        put(DoneInfo(Code("OK"), latency if chosen == address else 0.0001))
        if balancer.address_state(address).samples:
            return


def test_p2c_sends_everything_to_the_faster_of_two_warm_addresses() -> None:
    clock = Clock()
    with driven("p2c_ewma", [A, B], seed=2, clock=clock) as (balancer, _, _fake):
        warm(balancer, A, 0.005)
        warm(balancer, B, 0.050)
        chosen = []
        for _ in range(200):
            address, put = balancer.get()
            chosen.append(address.addr)
            put(DoneInfo(Code("OK"), 0.005 if address == A else 0.050))
    assert Counter(chosen) == {A.addr: 200}


def test_p2c_peak_ewma_rules() -> None:
    clock = Clock()
    stats = AddressStats(tau=10.0, clock=clock)
    stats.observe(0.010)
    assert stats.cost == 0.010 and stats.samples == 1
    stats.observe(0.100)  # a peak replaces the cost at once
    assert stats.cost == 0.100
    clock.now += 10.0  # one tau later the cost has decayed by e
    assert stats.current(clock.now) == pytest.approx(0.100 / 2.718281828, rel=1e-6)
    stats.observe(0.001)
    w = 2.718281828**-1
    assert stats.cost == pytest.approx(0.100 * w * w + 0.001 * (1 - w), rel=1e-6)


def test_p2c_a_failure_counts_as_the_penalty() -> None:
    clock = Clock()
    with driven("p2c_ewma", [A], clock=clock, penalty=0.25) as (balancer, _, _fake):
        _, put = balancer.get()
        put(DoneInfo(Code("UNAVAILABLE"), 0.002, RuntimeError("down")))
        assert balancer.address_state(A).cost == 0.25
        clock.now += 1000.0
        _, put = balancer.get()
        put(DoneInfo(Code("NOT_FOUND"), 0.002))  # an application error is an answer
        assert balancer.address_state(A).cost == pytest.approx(0.002, rel=1e-3)


def test_p2c_a_cold_address_takes_one_probe_at_a_time() -> None:
    clock = Clock()
    with driven("p2c_ewma", [A, B], seed=4, clock=clock) as (balancer, resolver, fake):
        warm(balancer, A, 0.001)
        warm(balancer, B, 0.001)
        push(balancer, resolver, fake, [Update.add(C)])
        held = [balancer.get() for _ in range(300)]  # nothing ends: the load only grows
        assert sum(address == C for address, _ in held) == 1
        assert balancer.address_state(C).in_flight.count == 1
        probe = next(put for address, put in held if address == C)
        probe(DoneInfo(Code("OK"), 0.001))
        assert balancer.address_state(C).samples == 1
        more = [balancer.get() for _ in range(300)]
        assert sum(address == C for address, _ in more) > 50  # warm and idle: it takes load
        for _, put in held + more:
            put(None)


def test_p2c_an_abandoned_probe_frees_the_slot() -> None:
    with driven("p2c_ewma", [A], clock=Clock()) as (balancer, resolver, fake):
        warm(balancer, A, 0.001)
        push(balancer, resolver, fake, [Update.add(B)])
        first = [balancer.get() for _ in range(50)]
        probes = [put for address, put in first if address == B]
        assert len(probes) == 1
        probes[0].abandon()
        second = [balancer.get() for _ in range(50)]
        assert sum(address == B for address, _ in second) == 1
        for _, put in first + second:
            put(None)


def test_p2c_stats_survive_membership_changes() -> None:
    clock = Clock()
    with driven("p2c_ewma", [A, B], seed=9, clock=clock) as (balancer, resolver, fake):
        warm(balancer, A, 0.200)
        stats = balancer.address_state(A)
        push(balancer, resolver, fake, [Update.add(C)])
        assert balancer.address_state(A) is stats and stats.cost == 0.200
        warm(balancer, B, 0.001)
        warm(balancer, C, 0.001)
        assert A.addr not in picks(balancer, 100)  # still known as slow


def test_p2c_options_are_checked() -> None:
    for options in ({"tau": 0}, {"tau": -1.0}, {"tau": float("nan")}, {"penalty": -0.1}):
        with pytest.raises(ValueError, match="p2c_ewma: "):
            balancers.create("p2c_ewma", **options)
    balancer = balancers.create("p2c_ewma", tau=2, penalty=0)
    assert (balancer.tau, balancer.penalty) == (2.0, 0.0)  # type: ignore[attr-defined]


# -- ring_hash ---------------------------------------------------------------------------------


def test_ring_hash_one_key_one_address_and_keys_spread() -> None:
    with driven("ring_hash", [A, B, C]) as (balancer, _, _fake):
        for user in ("alice", "bob", "carol"):
            assert len(set(picks(balancer, 50, keyed("x-user-id", user)))) == 1
        counts = Counter(picks(balancer, 1, keyed("X-User-Id", f"u{i}"))[0] for i in range(3000))
    assert set(counts) == {A.addr, B.addr, C.addr}
    assert max(counts.values()) / 1000 <= 1.2, counts


def test_ring_hash_skips_an_address_that_is_not_ready_and_moves_only_its_keys() -> None:
    keys = [keyed("x-user-id", f"user-{i}") for i in range(2000)]
    with driven("ring_hash", [A, B, C]) as (balancer, _, fake):
        before = [balancer.get(info=k)[0] for k in keys]
        fake.down(B)
        during = [balancer.get(info=k)[0] for k in keys]
        fake.up(B)
        after = [balancer.get(info=k)[0] for k in keys]
    assert B not in during
    assert all(d == b for b, d in zip(before, during, strict=True) if b != B)  # only B's keys moved
    assert after == before


def test_ring_hash_without_a_key_picks_at_random_or_fails_under_require_key() -> None:
    with driven("ring_hash", [A, B, C], seed=1) as (balancer, _, _fake):
        assert set(picks(balancer, 200)) == {A.addr, B.addr, C.addr}
        assert set(picks(balancer, 200, PickInfo("/x/Y", (("other", "v"),)))) == {
            A.addr,
            B.addr,
            C.addr,
        }
    with driven("ring_hash", [A, B], require_key=True, hash_key="Tenant") as (balancer, _, _f):
        with pytest.raises(NamingError, match="ring_hash: the call has no 'tenant' metadata"):
            balancer.get()
        assert len(set(picks(balancer, 20, keyed("tenant", "t1")))) == 1


def test_ring_hash_ring_size_and_weights() -> None:
    servers = [weighted("a:1", 1), weighted("b:1", 3), Address("c:1")]
    with driven("ring_hash", servers, min_ring_size=1000) as (balancer, _, _fake):
        balancer.get()
        picker = balancer._last_picker
        assert isinstance(picker, RingHashPicker)
        assert picker.size == 5 * 256  # per weight: 1000/5 rounded up to a power of two
        counts = Counter(picks(balancer, 1, keyed("x-user-id", f"k{i}"))[0] for i in range(10_000))
    assert abs(counts["b:1"] / 10_000 - 0.6) <= 0.05, counts
    for bad in (0, 1.5, "1024"):
        with pytest.raises(ValueError, match="ring_hash: min_ring_size"):
            balancers.create("ring_hash", min_ring_size=bad)
    with pytest.raises(ValueError, match="ring_hash: hash_key"):
        balancers.create("ring_hash", hash_key="")


def test_ring_hash_a_joining_address_moves_about_its_share_of_keys() -> None:
    servers = [Address(f"10.1.0.{i}:443") for i in range(10)]
    keys = [keyed("x-user-id", f"user-{i}") for i in range(5000)]
    with driven("ring_hash", servers) as (balancer, resolver, fake):
        before = [balancer.get(info=k)[0] for k in keys]
        push(balancer, resolver, fake, [Update.add(Address("10.1.0.10:443"))])
        after = [balancer.get(info=k)[0] for k in keys]
    moved = [b != a for b, a in zip(before, after, strict=True)]
    assert all(a.addr == "10.1.0.10:443" for a, m in zip(after, moved, strict=True) if m)
    assert sum(moved) / len(keys) / (1 / 11) <= 1.3
