"""p5: failed calls while one of three registered servers goes away under steady load.

A private etcd; for each scenario a fresh key prefix, three child-process servers registered under
it and a fresh ``naming.dial`` round_robin channel on the same etcd target. Four caller threads call
``/bench.Echo/Slow`` (a few ms of server time, so that calls are in flight) with a 2 s timeout.
Once all three servers have answered, the load runs for a while, one server goes away, the load
runs on, and every call that did not end OK in that whole window is counted:

* graceful: ``ChildServer.stop()`` (SIGTERM: the record is deleted, then the server stops with a
  grace period), fail-fast calls;
* SIGKILL with fail-fast calls, and SIGKILL with ``wait_for_ready=True`` calls;
* the same SIGKILL with ``wait_for_ready=True`` calls on a channel dialled with
  ``idempotent=("/bench.Echo/*",)``: calls in flight on the victim may be sent again.

``p5_inflight_at_kill`` (of the fail-fast kill) is counted on the client: the calls running on the
victim's subchannel when SIGKILL is sent (``Subchannel.in_flight``), plus the calls the balancer
sent to the victim while it died (SIGKILL takes a few ms to end a process; a wrapper around the
balancer's ``get`` sees those picks) except those that failed to connect: they never left the
client. With logging at INFO each scenario logs that breakdown and every failure.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc

import naming
from naming.testing.etcd import EtcdServer

from ._server import SLOW
from ._servers import ChildServer, child_servers

__all__ = ["run"]

log = logging.getLogger(__name__)

THREADS = 4
CALL_TIMEOUT = 2.0
SERVER_MS = b"5"  # milliseconds each call spends in the server
READY_TIMEOUT = 10.0
JOIN_TIMEOUT = CALL_TIMEOUT + 5.0
MAX_CALLS = 100_000  # per caller thread and scenario
IDEMPOTENT = ("/bench.Echo/*",)  # the fourth scenario's dial: every bench method may run again
UNSENT = "failed to connect"  # grpc's details of a call that never left the client


class Picks:
    """Watches a channel's picks of one address: wraps the ``get`` the channel calls on every pick
    (its private ``_get``: the channel keeps its own reference to ``balancer.get``, so wrapping the
    balancer's attribute after ``dial()`` would see nothing).

    While ``armed``, each pick of ``addr`` is counted, and the picking thread remembers it until
    its next pick (``took_armed()``), so that a call can tell whether it was one of them.
    """

    def __init__(self, channel: Any, addr: str) -> None:
        self.armed = False
        self._picked: list[None] = []  # list.append is atomic: no lock on the calls' path
        self._local = threading.local()
        get = channel._get

        def watching_get(*args: Any, **kwargs: Any) -> Any:
            picked = get(*args, **kwargs)
            took = self.armed and picked[0].addr == addr
            self._local.took = took
            if took:
                self._picked.append(None)
            return picked

        channel._get = watching_get

    @property
    def count(self) -> int:
        return len(self._picked)

    def took_armed(self) -> bool:
        """True if this thread's last pick was of ``addr`` while armed."""
        return bool(getattr(self._local, "took", False))

    def forget(self) -> None:
        self._local.took = False


class Load:
    """``threads`` threads calling SLOW on ``channel`` until ``stop()`` or ``limit`` seconds.

    ``ok`` counts the replies by server name; ``failures`` holds, for every call that did not end
    OK: (seconds since start, code, details, whether its pick was one ``picks`` counted).
    """

    def __init__(
        self,
        channel: grpc.Channel,
        wait_for_ready: bool,
        limit: float,
        picks: Picks,
        threads: int = THREADS,
    ) -> None:
        self._call = channel.unary_unary(SLOW, _registered_method=True)
        self._wait_for_ready = wait_for_ready
        self._limit = limit
        self._picks = picks
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.started = 0.0
        self.ok: Counter[str] = Counter()
        self.failures: list[tuple[float, str, str, bool]] = []
        self._threads = [
            threading.Thread(target=self._loop, name=f"p5-caller-{i}", daemon=True)
            for i in range(threads)
        ]

    def start(self) -> Load:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        if any(thread.is_alive() for thread in self._threads):
            raise RuntimeError("bench p5: a caller thread did not stop")

    def _loop(self) -> None:
        end = self.started + self._limit
        ok: Counter[str] = Counter()
        failures: list[tuple[float, str, str, bool]] = []
        for _ in range(MAX_CALLS):
            if self._stopping.is_set() or time.monotonic() > end:
                break
            self._picks.forget()
            try:
                reply = self._call(
                    SERVER_MS, timeout=CALL_TIMEOUT, wait_for_ready=self._wait_for_ready
                )
            except grpc.RpcError as exc:
                at = time.monotonic() - self.started
                failures.append((at, exc.code().name, exc.details(), self._picks.took_armed()))
            else:
                ok[reply.decode()] += 1
        with self._lock:
            self.ok.update(ok)
            self.failures.extend(failures)


def _wait_all_answer(channel: grpc.Channel, servers: list[ChildServer]) -> None:
    """Call until every server has answered (bounded in calls and time)."""
    call = channel.unary_unary(SLOW, _registered_method=True)
    names = {server.name.encode() for server in servers}
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(1000):
        if not names or time.monotonic() > deadline:
            break
        names.discard(call(b"0", timeout=READY_TIMEOUT, wait_for_ready=True))
    if names:
        raise RuntimeError(f"bench p5: servers {sorted(names)} never answered")


def _running_on(channel: naming.BalancedChannel, server: ChildServer) -> int:
    """The calls running now on the channel's subchannel to ``server``."""
    for address, subchannel in channel.subchannels().items():
        if address.addr == server.address:
            return subchannel.in_flight
    return 0


def _kill(channel: naming.BalancedChannel, victim: ChildServer, picks: Picks) -> int:
    """SIGKILL ``victim``; the calls running on it at the signal. ``picks`` is armed from the
    signal until the process is reaped: SIGKILL takes a few ms to end a process."""
    running = _running_on(channel, victim)
    picks.armed = True
    victim.kill()
    picks.armed = False
    return running


def _stop(channel: naming.BalancedChannel, victim: ChildServer, picks: Picks) -> int:
    """Stop ``victim`` gracefully (it deregisters first); the calls running on it at the signal."""
    running = _running_on(channel, victim)
    victim.stop()  # returns once the process has exited
    return running


def fresh_target(etcd: EtcdServer) -> str:
    """A target on ``etcd`` under a key prefix no other scenario uses."""
    return f"etcd://{etcd.endpoint}/bench?prefix=/bench-p5-{uuid.uuid4().hex}"


def _scenario(
    etcd: EtcdServer,
    name: str,
    action: Callable[[naming.BalancedChannel, ChildServer, Picks], int],
    wait_for_ready: bool,
    before: float,
    after: float,
    idempotent: tuple[str, ...] = (),
) -> tuple[int, int]:
    """(failed calls, calls in flight on the victim when it died) of one scenario.

    In flight when it died: the calls running on it at the signal, plus those sent to it while it
    was dying (picked between the signal and the reaping) that did not fail with "failed to
    connect" (those never left the client: the victim was gone when they looked for it).
    """
    target = fresh_target(etcd)
    with child_servers(3, register=target) as servers:
        victim = servers[0]
        channel = naming.dial(target, balancer="round_robin", idempotent=idempotent)
        try:
            _wait_all_answer(channel, servers)
            picks = Picks(channel, victim.address)
            load = Load(channel, wait_for_ready, before + after + CALL_TIMEOUT + 5.0, picks)
            load.start()
            try:
                time.sleep(before)
                acted = time.monotonic() - load.started
                running = action(channel, victim, picks)
                time.sleep(after)
            finally:
                load.stop()
        finally:
            channel.close()
    unsent = [took for _, _, details, took in load.failures if details.startswith(UNSENT)]
    in_flight = running + picks.count - sum(unsent)
    log.info(
        "p5 %s: ok %s; victim: %d running at the signal, %d picked while it died; "
        "%d failed, %d of them never sent (%d picked while it died): %s",
        name,
        dict(load.ok),
        running,
        picks.count,
        len(load.failures),
        len(unsent),
        sum(unsent),
        [
            (round(at - acted, 4), code, details[:50], took)
            for at, code, details, took in load.failures
        ],
    )
    return len(load.failures), in_flight


class _NoPicks:
    """Stands in for Picks on a channel that has no balancer of ours (grpcio's own)."""

    armed = False
    count = 0

    def forget(self) -> None:
        pass

    def took_armed(self) -> bool:
        return False


def _native_kill_wfr(before: float, after: float) -> tuple[int, int]:
    """The anchor: grpcio's own round_robin under the same wait_for_ready load and the same kill.

    Returns (failed calls, failed calls that had been sent: not "failed to connect").
    """
    with child_servers(3) as servers:
        target = "ipv4:" + ",".join(server.address for server in servers)
        options = [("grpc.lb_policy_name", "round_robin")]
        with grpc.insecure_channel(target, options=options) as channel:
            _wait_all_answer(channel, servers)
            load = Load(channel, True, before + after + CALL_TIMEOUT + 5.0, _NoPicks())  # type: ignore[arg-type]
            load.start()
            try:
                time.sleep(before)
                servers[0].kill()
                time.sleep(after)
            finally:
                load.stop()
    sent = [f for f in load.failures if not f[2].startswith(UNSENT)]
    log.info("p5 native sigkill-wfr: ok %s; failed %s", dict(load.ok), load.failures)
    return len(load.failures), len(sent)


def run(quick: bool) -> dict[str, float]:
    before, after = (0.5, 1.5) if quick else (1.0, 4.0)
    with EtcdServer() as etcd:
        etcd.start()
        graceful, _ = _scenario(etcd, "graceful", _stop, False, before, after)
        failfast, in_flight = _scenario(etcd, "sigkill-failfast", _kill, False, before, after)
        wfr, _ = _scenario(etcd, "sigkill-wfr", _kill, True, before, after)
        wfr_idempotent, _ = _scenario(
            etcd, "sigkill-wfr-idempotent", _kill, True, before, after, IDEMPOTENT
        )
    native_wfr, native_sent = _native_kill_wfr(before, after)
    return {
        "p5_native_failed_sigkill_wfr": native_wfr,
        "p5_native_failed_sent_sigkill_wfr": native_sent,
        "p5_failed_graceful": graceful,  # counts: ints, shown as such in the table
        "p5_failed_sigkill_failfast": failfast,
        "p5_failed_sigkill_wfr": wfr,
        "p5_failed_sigkill_wfr_idempotent": wfr_idempotent,
        "p5_inflight_at_kill": in_flight,
    }
