"""The call policy: every decision a call makes, written once and without I/O.

A call picks an address, runs an attempt there, and after each outcome ends, picks again at once,
picks again after a pause, or gives up with a status (the table is in docs/channel.md, "The call
policy"). :class:`CallPolicy` makes those decisions and nothing else: it never blocks, sleeps,
starts a thread or touches grpc's channels, and it keeps no state of a call. The driver of a call
does the I/O between two decisions and keeps the call's two counters (attempts that ran, picks
that could not be used), as the clients of httpx drive one ``auth_flow``:

* the blocking call (``__call__``, ``with_call``; :mod:`naming.channel._calls`): a loop on the
  caller's thread;
* the future (``future()``; :mod:`naming.channel._future`): its first pick without blocking, its
  attempts as grpc futures decided in grpc's done callback, and every pick that must wait (or
  follows a pause) in a ``naming-channel-call`` thread;
* the streaming calls: one pick and one attempt, since a stream is never replayed.

Plain methods rather than a generator per call: the blocking unary call is the hot path, and a
generator with its sends cost 0.5 to 1 us per call here, a large share of the 2 to 3 us of CPU that
this channel adds to a call; a call that succeeds asks the policy nothing but :meth:`start`'s
values, which the blocking loop reads inline. An asyncio driver drives the same methods unchanged,
with ``await`` where the sync drivers block::

    deadline, wait, sent_wait = policy.start(timeout, wait_for_ready)
    attempts = 0
    while True:
        subchannel, put = await pick(policy, info, wait, deadline)  # raises CallError
        call = <the attempt on subchannel, awaited>, with remaining(deadline) and sent_wait
        report(put, ...)                # once: the attempt ran there (naming.channel._attempt)
        if call succeeded: return it
        attempts += 1
        delay = policy.after(call, wait, attempts)
        if delay is None: raise call    # the outcome stands
        await asyncio.sleep(max(within(delay, deadline), 0.0))

where ``pick`` asks the balancer with ``blocking_wait=wait`` and ``timeout=remaining(deadline)``,
maps its errors with :meth:`CallPolicy.pick_failed`, and for an address with no subchannel calls
``abandon(put)`` and asks :meth:`CallPolicy.unusable` whether to wait for the list and pick again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import grpc

from balancers import PickInfo
from naming.core import BalancerClosedError, DeadlineExceededError, NoAddressAvailableError

from ._errors import CallError, closed_error

__all__ = [
    "PICK_ERRORS",
    "CallPolicy",
    "as_seconds",
    "idempotent_methods",
    "remaining",
    "resync_wait",
    "unsent",
    "within",
]

Code = grpc.StatusCode

FIRST_PAUSE, LONGEST_PAUSE = 0.01, 0.2  # before a wait_for_ready call is picked again; doubling
RESYNC_WAIT = 0.1  # how long a pick waits for the subchannels to catch up with the balancer
FAIL_FAST_PICKS = 3  # picks a fail-fast call makes before a missing subchannel fails it
PICK_ERRORS = (NoAddressAvailableError, DeadlineExceededError, BalancerClosedError)
# grpc's details of a call that failed before it left the client: no server saw it.
_UNSENT = ("failed to connect to all addresses", "DNS resolution failed")


def remaining(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (a ``time.monotonic()`` value), never below 0; None: none."""
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


def unsent(call: Any) -> bool:
    """True when a finished call failed to connect: no server saw it, so it may be picked again."""
    return call.code() is Code.UNAVAILABLE and (call.details() or "").startswith(_UNSENT)


def _unavailable(call: Any) -> bool:
    """True when a finished call failed with UNAVAILABLE: how an idempotent call may be retried."""
    return call.code() is Code.UNAVAILABLE


class CallPolicy:
    """The decisions for the calls of one method: immutable, shared by its calls, thread-safe.

    ``kind`` is grpc's ("unary_unary", "unary_stream", "stream_unary", "stream_stream");
    ``idempotent`` says that the method's calls may run twice (``dial(idempotent=...)``).
    """

    __slots__ = ("_retryable", "info", "method", "replays", "sent_when_waiting")

    def __init__(self, kind: str, method: str, idempotent: bool = False) -> None:
        self.method = method
        self.info = PickInfo(method)  # the PickInfo of every call without metadata, made once
        # Only a unary-unary call is made again: a request stream cannot be replayed, and a
        # response stream may have delivered messages. Only a call to an idempotent method is
        # repeated after a server may have seen it.
        self.replays = kind == "unary_unary"
        # The wait_for_ready that attempts of a wait_for_ready call pass to grpc: False when the
        # policy picks again instead, so that the call waits for *any* ready address rather than
        # for the one it was given; otherwise grpc waits itself (see start()).
        self.sent_when_waiting = not self.replays
        self._retryable = _unavailable if idempotent else unsent

    def pick_info(self, metadata: Any) -> PickInfo:
        """What the balancer learns of a call: the method and its ``metadata`` as a tuple."""
        if metadata is None:
            return self.info
        return PickInfo(self.method, metadata if type(metadata) is tuple else tuple(metadata))

    def start(self, timeout: float | None, wait_for_ready: bool | None) -> tuple[Any, bool, Any]:
        """(deadline, wait, sent_wait) of a call: its ``time.monotonic()`` deadline or None;
        whether its picks wait for a ready address (``blocking_wait``); and the ``wait_for_ready``
        its attempts pass to grpc (:attr:`sent_when_waiting` for a call that waits, else the
        call's own). The blocking driver, the hot path, reads the same values inline."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if wait_for_ready:
            return deadline, True, self.sent_when_waiting
        return deadline, False, wait_for_ready

    def pick_failed(
        self,
        error: Exception,
        block: bool,
        target: str | None = None,
        resolver_error: BaseException | None = None,
        timeout: float | None = None,
    ) -> CallError | None:
        """The status of a call whose pick raised ``error`` (one of PICK_ERRORS).

        UNAVAILABLE: no address at all (fail-fast); DEADLINE_EXCEEDED: none became ready in time;
        CANCELLED: the balancer is closed. None: a pick made without blocking would have to wait,
        and the driver makes it again where it may block.

        The details are the balancer's message; given the channel's ``target``, they start with
        it, a deadline's say the call's ``timeout`` (rounded) rather than what was left of it, and
        a ``resolver_error`` (``Balancer.resolver_error``) ends them, as grpc-go's "last resolver
        error" does: ``"etcd://h:1/svc: round_robin: there is no address available; last
        resolver error: etcd: ..."``.
        """
        if isinstance(error, NoAddressAvailableError):
            details = str(error) if target is None else f"{target}: {error}"
            return CallError(Code.UNAVAILABLE, details + _last_error(resolver_error))
        if isinstance(error, DeadlineExceededError):
            if not block:
                return None
            if target is None:
                details = str(error)
            elif timeout is None:
                details = f"{target}: {error}"
            else:
                details = f"{target}: no address became ready within {as_seconds(timeout)}"
            return CallError(Code.DEADLINE_EXCEEDED, details + _last_error(resolver_error))
        return closed_error()

    def balancer_failed(self, error: Exception, target: str) -> CallError:
        """The status of a call whose pick raised something else: the balancer (its picker) is
        broken. INTERNAL, as gRFC A54 gives a picker that fails in a way it may not: the failure
        is the client's own, not the server's nor the network's, so nothing should retry it as
        UNAVAILABLE; for every kind of call, wait_for_ready or not."""
        return CallError(
            Code.INTERNAL,
            f"channel: {target}: the balancer failed to pick an address for {self.method}: "
            f"{type(error).__name__}: {error}",
        )

    def unusable(self, address: Any, wait: bool, picks: int) -> CallError | None:
        """After ``picks`` picks whose address had no subchannel (the balancer is ahead of the
        channel's list), the last one ``address``: the status to give up with (fail-fast, the
        third: UNAVAILABLE), or None: wait up to :func:`resync_wait` for the list, pick again."""
        if not wait and picks >= FAIL_FAST_PICKS:
            return CallError(Code.UNAVAILABLE, f"channel: no connection to {address.addr}")
        return None

    def after(self, call: Any, wait: bool, attempts: int) -> float | None:
        """After a failed attempt (``call``, finished; ``attempts`` ran, this one included):
        None, the outcome stands; 0.0, pick again at once (a fail-fast call that never left the
        client, once); else the pause before picking again (a wait_for_ready call that reached no
        server, or an idempotent call after UNAVAILABLE): 10 ms, doubling to 200 ms."""
        if not self.replays or not self._retryable(call):
            return None
        if wait:
            return min(FIRST_PAUSE * 2.0 ** min(attempts - 1, 16), LONGEST_PAUSE)
        return 0.0 if attempts == 1 else None


def _last_error(error: BaseException | None) -> str:
    return "" if error is None else f"; last resolver error: {error}"


def as_seconds(value: float) -> str:
    """``value`` seconds for a message, rounded: ``0.1s``, ``2.5s``, ``1200s``."""
    return f"{value:.3g}s" if abs(value) < 1000 else f"{value:.0f}s"


def within(seconds: float, deadline: float | None) -> float:
    """``seconds``, cut short at ``deadline`` (below 0 once it has passed)."""
    return seconds if deadline is None else min(seconds, deadline - time.monotonic())


def resync_wait(deadline: float | None) -> float:
    """How long a pick that found no subchannel waits for the list (never past ``deadline``)."""
    return within(RESYNC_WAIT, deadline)


def idempotent_methods(entries: Iterable[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(full method names, service names) of ``entries``: ``/service/method`` or ``/service/*``.

    Raises ValueError naming the first entry of another form, TypeError if one is not a str (or if
    ``entries`` is itself a str, which would be read as its characters).
    """
    if isinstance(entries, str | bytes):
        raise TypeError(f"idempotent must be an iterable of method names, not {entries!r}")
    methods: set[str] = set()
    services: set[str] = set()
    for entry in entries:
        if not isinstance(entry, str):
            raise TypeError(f"idempotent: {entry!r} is not a str")
        parts = entry.split("/")
        if (
            len(parts) != 3
            or parts[0]
            or not parts[1]
            or not parts[2]
            or "*" in parts[1]
            or ("*" in parts[2] and parts[2] != "*")
            or any(c.isspace() for c in entry)
        ):
            raise ValueError(
                f"idempotent: {entry!r} is not of the form '/service/method' or '/service/*'"
            )
        if parts[2] == "*":
            services.add(parts[1])
        else:
            methods.add(entry)
    return frozenset(methods), frozenset(services)
