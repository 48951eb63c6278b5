"""The call policy (naming.channel._policy), its decisions one by one, and the put contract on real
gRPC servers: every pick's ``put`` is called exactly once when a call ran on its address, and never
(``put.abandon()`` instead) when the pick could not be used; every ``get()`` gets the call's PickInfo.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

import naming
from balancers import DoneInfo, PickInfo, RoundRobin
from naming import Address, BalancerClosedError, DeadlineExceededError, NoAddressAvailableError
from naming.channel._attempt import start_attempt
from naming.channel._errors import CallError
from naming.channel._policy import FAIL_FAST_PICKS, CallPolicy, remaining, resync_wait
from naming.channel._subchannel import Subchannel
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, wait_until
from naming.testing.servers import COUNT, ECHO, FAIL, HOLD, PORT, PORTS, Harness, wait_for_state

from ._balanced import balanced_channel

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY
UNSENT = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:1"
GONE = Address("127.0.0.1:1")  # an address the channel has no subchannel for


# -- the decisions, without I/O ----------------------------------------------------------------


def test_start_gives_the_deadline_the_pick_mode_and_what_grpc_is_told() -> None:
    unary, stream = CallPolicy("unary_unary", PORT), CallPolicy("unary_stream", PORTS)
    before = time.monotonic()
    deadline, wait, sent = unary.start(2.0, True)
    assert before + 2.0 <= deadline <= time.monotonic() + 2.0
    assert (wait, sent) == (True, False)  # a replayable call runs fail-fast and is picked again
    assert unary.start(None, None) == (None, False, None)
    assert unary.start(None, False) == (None, False, False)
    assert stream.start(None, True) == (None, True, True)  # a stream waits in grpc itself
    assert CallPolicy("stream_unary", COUNT).start(None, True) == (None, True, True)


def test_pick_info_is_made_once_without_metadata_and_per_call_with_it() -> None:
    policy = CallPolicy("unary_unary", PORT)
    assert policy.pick_info(None) is policy.pick_info(None) == PickInfo(PORT, ())
    assert policy.pick_info([("k", "v"), ("b-bin", b"\x00")]) == PickInfo(
        PORT, (("k", "v"), ("b-bin", b"\x00"))
    )
    metadata = (("k", "v"),)
    assert policy.pick_info(metadata).metadata is metadata


def test_pick_errors_map_to_their_status() -> None:
    policy = CallPolicy("unary_unary", PORT)
    none = policy.pick_failed(NoAddressAvailableError("rr: none"), True)
    late = policy.pick_failed(DeadlineExceededError("rr: late"), True)
    closed = policy.pick_failed(BalancerClosedError("rr: closed"), True)
    assert isinstance(none, CallError) and isinstance(late, CallError)
    assert isinstance(closed, CallError)
    assert [none.code(), late.code(), closed.code()] == [
        Code.UNAVAILABLE,
        Code.DEADLINE_EXCEEDED,
        Code.CANCELLED,
    ]
    assert [none.details(), late.details()] == ["rr: none", "rr: late"]
    # Without blocking, a pick that would wait is not a failure: the driver waits elsewhere.
    assert policy.pick_failed(DeadlineExceededError("rr: late"), False) is None
    assert policy.pick_failed(NoAddressAvailableError("rr: none"), False) is not None


def test_unusable_picks_give_up_after_three_fail_fast_never_when_waiting() -> None:
    policy = CallPolicy("unary_unary", PORT)
    assert [policy.unusable(GONE, False, picks) for picks in range(1, FAIL_FAST_PICKS)] == [
        None
    ] * (FAIL_FAST_PICKS - 1)
    error = policy.unusable(GONE, False, FAIL_FAST_PICKS)
    assert isinstance(error, CallError) and error.code() is Code.UNAVAILABLE
    assert error.details() == "channel: no connection to 127.0.0.1:1"
    assert policy.unusable(GONE, True, 1000) is None
    assert resync_wait(None) == 0.1
    assert resync_wait(time.monotonic() - 1.0) < 0
    assert remaining(None) is None and remaining(time.monotonic() - 1.0) == 0.0


def test_after_a_failed_attempt() -> None:
    unsent = CallError(Code.UNAVAILABLE, UNSENT)
    reset = CallError(Code.UNAVAILABLE, "Socket closed")
    failed = CallError(Code.NOT_FOUND, "nothing here")
    plain = CallPolicy("unary_unary", PORT)
    idempotent = CallPolicy("unary_unary", PORT, idempotent=True)
    # wait_for_ready: pick again after a pause, 10 ms doubling to 200 ms, for as long as it takes.
    pauses = [plain.after(unsent, True, attempts) for attempts in range(1, 8)]
    assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2])
    assert plain.after(unsent, True, 10_000) == 0.2
    # fail-fast: once more at once, then the outcome stands.
    assert [plain.after(unsent, False, 1), plain.after(unsent, False, 2)] == [0.0, None]
    # A call that may have reached its server: only an idempotent one is picked again.
    assert [plain.after(reset, True, 1), plain.after(reset, False, 1)] == [None, None]
    assert [idempotent.after(reset, True, 1), idempotent.after(reset, False, 1)] == [0.01, 0.0]
    assert [plain.after(failed, True, 1), idempotent.after(failed, True, 1)] == [None, None]
    # Streams and a request stream: one attempt, whatever happened.
    for kind in ("unary_stream", "stream_unary", "stream_stream"):
        policy = CallPolicy(kind, PORT, idempotent=True)
        assert [policy.after(unsent, True, 1), policy.after(unsent, False, 1)] == [None, None]


# -- the put contract, on real servers ------------------------------------------------------------


class Put:
    """One pick's put: records the DoneInfo of every call and every abandon()."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.infos: list[DoneInfo] = []
        self.abandoned = 0

    def __call__(self, info: DoneInfo | None = None) -> None:
        assert info is not None
        self.infos.append(info)

    def abandon(self) -> None:
        self.abandoned += 1


class Recording(RoundRobin):
    """round_robin with a fresh Put per pick; ``first`` holds addresses for the next picks, and
    ``on_get()`` runs after each pick, before it is returned."""

    name = "recording_puts"

    def __init__(self, resolver: naming.Resolver) -> None:
        super().__init__(resolver)
        self.puts: list[Put] = []
        self.infos: list[PickInfo | None] = []
        self.first: list[Address] = []
        self.on_get: Any = None
        self._lock = threading.Lock()

    def get(
        self,
        *,
        blocking_wait: bool = False,
        timeout: float | None = None,
        info: PickInfo | None = None,
    ) -> Any:
        with self._lock:
            address = self.first.pop(0) if self.first else None
        if address is None:
            address, _ = super().get(blocking_wait=blocking_wait, timeout=timeout, info=info)
        if self.on_get is not None:
            self.on_get()
        put = Put(address)
        with self._lock:
            self.puts.append(put)
            self.infos.append(info)
        return address, put

    def ran(self) -> list[Put]:
        return [put for put in self.puts if put.infos]

    def codes(self) -> list[Any]:
        return [info.code for put in self.puts for info in put.infos]

    def check_once(self) -> None:
        """Every pick's put got exactly one of put() and abandon()."""
        assert [len(put.infos) + put.abandoned for put in self.puts] == [1] * len(self.puts)


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


def recording(harness: Harness, *servers: Any, target: str | None = None) -> tuple[Recording, Any]:
    return balanced_channel(harness, Recording, *servers, target=target)


def test_every_kind_of_call_that_ran_is_put_exactly_once(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording(harness, server)
    md = (("x-user", "u1"),)

    assert channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT, metadata=md) == b"s0"
    assert channel.unary_unary(PORT).with_call(b"", metadata=[("x-user", "u2")])[0] == b"s0"
    assert channel.unary_unary(PORT).future(b"").result(timeout=DEFAULT_TIMEOUT) == b"s0"
    with pytest.raises(grpc.RpcError):
        channel.unary_unary(FAIL)(b"", timeout=DEFAULT_TIMEOUT)
    assert list(channel.unary_stream(PORTS)(b"3", metadata=md)) == [b"s0"] * 3
    assert channel.stream_unary(COUNT)(iter([b"a", b"b"])) == b"s0:2"
    assert list(channel.stream_stream(ECHO)(iter([b"x", b"y"]))) == [b"s0:x", b"s0:y"]

    wait_until(lambda: len(balancer.ran()) == 7, what="seven calls to be put")
    time.sleep(SHORT_TIMEOUT)  # no second put arrives late
    assert len(balancer.puts) == 7
    balancer.check_once()
    assert [put.abandoned for put in balancer.puts] == [0] * 7
    assert balancer.codes() == [Code.OK] * 3 + [Code.NOT_FOUND] + [Code.OK] * 3
    assert [info.method if info else None for info in balancer.infos] == [
        PORT,
        PORT,
        PORT,
        FAIL,
        PORTS,
        COUNT,
        ECHO,
    ]
    assert [info.metadata if info else None for info in balancer.infos] == [
        md,
        (("x-user", "u2"),),
        (),
        (),
        md,
        (),
        (),
    ]


def test_a_pick_without_a_subchannel_is_abandoned_not_put(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording(harness, server)
    method = channel.unary_unary(PORT)

    balancer.first = [GONE]  # the balancer is ahead of the channel's list, once
    assert method(b"", timeout=DEFAULT_TIMEOUT) == b"s0"
    balancer.first = [GONE]
    assert method.future(b"", timeout=DEFAULT_TIMEOUT).result() == b"s0"
    balancer.first = [GONE]
    assert list(channel.unary_stream(PORTS)(b"1", timeout=DEFAULT_TIMEOUT)) == [b"s0"]
    wait_until(lambda: len(balancer.ran()) == 3, what="three calls to be put")
    assert [(put.address, len(put.infos), put.abandoned) for put in balancer.puts] == [
        (GONE, 0, 1),
        (Address(server.address), 1, 0),
    ] * 3

    # Fail-fast, picked without a subchannel three times: UNAVAILABLE, three abandons, no put.
    balancer.puts.clear()
    balancer.first = [GONE] * FAIL_FAST_PICKS
    with pytest.raises(grpc.RpcError) as info:
        method(b"", timeout=DEFAULT_TIMEOUT)
    assert info.value.code() is Code.UNAVAILABLE
    assert info.value.details() == f"channel: no connection to {GONE.addr}"
    assert [(len(put.infos), put.abandoned) for put in balancer.puts] == [(0, 1)] * 3


def test_a_subchannel_being_closed_is_abandoned_and_the_call_ends_elsewhere(
    harness: Harness,
) -> None:
    s0, s1 = harness.start_servers(2)
    balancer, channel = recording(harness, s0, s1)
    channel.subchannels()[Address(s0.address)].close()  # acquire() refuses it from now on
    balancer.first = [Address(s0.address)]
    assert channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT) == b"s1"
    assert [(put.address.addr, len(put.infos), put.abandoned) for put in balancer.puts] == [
        (s0.address, 0, 1),
        (s1.address, 1, 0),
    ]


def test_a_call_refused_by_grpc_is_abandoned_and_cancelled(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    subchannel = Subchannel(Address(server.address), RoundRobin())
    assert subchannel.acquire()
    subchannel.close()  # grpc now refuses calls on it
    put = Put(Address(server.address))
    spec = ("unary_unary", PORT, None, None, False)
    outcome = start_attempt(subchannel, put, lambda: subchannel.multicallable(spec).future(b""))
    assert isinstance(outcome, CallError) and outcome.code() is Code.CANCELLED
    assert (put.infos, put.abandoned, subchannel.in_flight) == ([], 1, 0)


def test_a_call_grpc_refuses_for_its_arguments_raises_and_abandons_its_pick(
    harness: Harness,
) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording(harness, server)
    method = channel.unary_unary(PORT)
    bad = [("x",)]  # not a (key, value) pair: grpc raises ValueError before the call starts
    with pytest.raises(ValueError):
        method(b"", timeout=DEFAULT_TIMEOUT, metadata=bad)
    with pytest.raises(ValueError):
        method.future(b"", timeout=DEFAULT_TIMEOUT, metadata=bad)
    assert [(len(put.infos), put.abandoned) for put in balancer.puts] == [(0, 1)] * 2
    assert server.calls == 0
    assert channel.subchannels()[Address(server.address)].in_flight == 0


def test_a_channel_closed_during_the_pick_abandons_it(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording(harness, server)
    balancer.on_get = channel.close  # the channel closes while the balancer picks
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT)
    assert info.value.code() is Code.CANCELLED
    assert [(len(put.infos), put.abandoned) for put in balancer.puts] == [(0, 1)]


def test_a_wait_for_ready_call_picked_again_twice_is_put_once_per_attempt(
    harness: Harness,
) -> None:
    s0, s1 = harness.start_servers(2)
    balancer, channel = recording(harness, s0, s1)
    s0.stop()
    wait_for_state(channel, s0.address, grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    method = channel.unary_unary(PORT)
    stale = Address(s0.address)

    balancer.first = [stale, stale]  # two attempts that cannot connect, then s1
    assert method(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True) == b"s1"
    balancer.first = [stale, stale]
    future = method.future(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True)
    assert future.result(timeout=DEFAULT_TIMEOUT) == b"s1"
    wait_until(lambda: len(balancer.ran()) == 6, what="six attempts to be put")
    balancer.check_once()
    assert [put.address for put in balancer.puts] == [stale, stale, Address(s1.address)] * 2
    assert balancer.codes() == [Code.UNAVAILABLE, Code.UNAVAILABLE, Code.OK] * 2


def test_a_cancelled_future_is_put_once_if_it_started(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    balancer, channel = recording(harness, server)
    future = channel.unary_unary(HOLD).future(b"", timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: server.held == 1)
    assert future.cancel()
    wait_until(lambda: balancer.ran(), what="the cancelled call to be put")
    time.sleep(SHORT_TIMEOUT)
    assert [(len(put.infos), put.abandoned) for put in balancer.puts] == [(1, 0)]
    assert balancer.codes() == [Code.CANCELLED]


def test_a_future_cancelled_before_it_started_is_never_put(harness: Harness) -> None:
    resolver, target = harness.manual()
    balancer, channel = recording(harness, target=target)
    future = channel.unary_unary(PORT).future(b"", timeout=DEFAULT_TIMEOUT, wait_for_ready=True)
    time.sleep(SHORT_TIMEOUT)  # its pick waits in a thread: no address yet
    assert future.cancel() and future.cancelled()
    (server,) = harness.start_servers(1)
    resolver.set_addresses([server.address])  # the waiting pick now gets it, and must not run
    wait_until(lambda: balancer.puts, what="the waiting pick to return")
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name == "naming-channel-call"],
        what="the pick thread to end",
    )
    assert [(len(put.infos), put.abandoned) for put in balancer.puts] == [(0, 1)]
    assert server.calls == 0


def test_closing_under_load_puts_or_abandons_every_pick_exactly_once(harness: Harness) -> None:
    servers = harness.start_servers(2)
    balancer, channel = recording(harness, *servers)
    method = channel.unary_unary(PORT)
    go, stop = threading.Event(), threading.Event()

    def caller(i: int) -> None:
        go.wait(DEFAULT_TIMEOUT)
        for n in range(2000):
            if stop.is_set() and n:
                return
            try:
                if i % 2:
                    method.future(b"", timeout=DEFAULT_TIMEOUT).exception(DEFAULT_TIMEOUT)
                else:
                    method(b"", timeout=DEFAULT_TIMEOUT)
            except (grpc.RpcError, ValueError):  # ValueError: a call made after close()
                pass

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    go.set()
    wait_until(lambda: len(balancer.puts) >= 200, what="calls to run")
    channel.close()
    stop.set()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads)
    wait_until(lambda: all(put.infos or put.abandoned for put in balancer.puts), what="outcomes")
    time.sleep(SHORT_TIMEOUT)
    balancer.check_once()


def test_a_balancer_whose_get_takes_no_info_still_works(harness: Harness) -> None:
    (server,) = harness.start_servers(1)

    class Legacy(RoundRobin):
        name = "legacy_get"

        def get(  # type: ignore[override]  # the shape before info
            self, *, blocking_wait: bool = False, timeout: float | None = None
        ) -> Any:
            return super().get(blocking_wait=blocking_wait, timeout=timeout)

    _, channel = balanced_channel(harness, Legacy, server)
    assert channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT, metadata=(("k", "v"),)) == b"s0"
