"""What a failing call of the balanced channel says, for every kind of call.

No address: UNAVAILABLE naming the target and the resolver's last error (a real etcd target nobody
serves, and the manual backend). A deadline: the call's own timeout, rounded. A picker that raises:
INTERNAL, never a bare exception. A call after ``close()``: grpcio's own ValueError. ``dial()``:
TypeError for bad credentials or options, before anything starts. And the DEBUG logs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import naming
from balancers import Picker, PickerBalancer, PickerState, PickInfo, Put
from naming import Address, BackendUnavailableError, Update
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.process import free_ports
from naming.testing.servers import COUNT, ECHO, PORT, PORTS, Harness, call_port, wait_for_state

from ._balanced import balanced_channel

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY
KINDS = 8  # __call__, with_call and future() of two methods; two streams


@pytest.fixture
def harness() -> Iterator[Harness]:
    with Harness() as h:
        yield h


def every_kind(channel: Any, **kwargs: Any) -> list[Any]:
    """The error of one call of each kind: unary-unary and stream-unary ``__call__``,
    ``with_call`` (raised) and ``future()`` (its exception), unary-stream and stream-stream
    (raised by the first ``next()``)."""
    errors: list[Any] = []
    for method, request in ((channel.unary_unary(PORT), b""), (channel.stream_unary(COUNT), None)):
        for call in (method, method.with_call):
            with pytest.raises(grpc.RpcError) as raised:
                call(iter([b"a"]) if request is None else request, **kwargs)
            errors.append(raised.value)
        future = method.future(iter([b"a"]) if request is None else request, **kwargs)
        errors.append(future.exception(timeout=DEFAULT_TIMEOUT))
    for stream in (
        channel.unary_stream(PORTS)(b"1", **kwargs),
        channel.stream_stream(ECHO)(iter([b"x"]), **kwargs),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            next(stream)
        errors.append(raised.value)
    return errors


# -- no address: the target and the resolver's last error ------------------------------------------


def test_no_address_names_the_target_and_the_last_error_of_an_unreachable_etcd(
    harness: Harness,
) -> None:
    (port,) = free_ports(1)  # nobody listens there
    target = f"etcd://127.0.0.1:{port}/greeter"
    channel = harness.adopt(naming.dial(target))
    wait_until(lambda: channel.balancer.resolver_error is not None, what="the registry's error")
    errors = every_kind(channel)
    assert [error.code() for error in errors] == [Code.UNAVAILABLE] * KINDS
    for error in errors:
        details = error.details()
        assert details.startswith(f"{target}: round_robin: there is no address available; ")
        last = details.split("; last resolver error: ", 1)[1]
        assert last.startswith("etcd: ") and f"127.0.0.1:{port}" in last
        assert "refused" in last.lower()
    assert isinstance(channel.balancer.resolver_error, BackendUnavailableError)


def test_no_address_on_the_manual_backend_names_the_target_then_the_resolvers_error(
    harness: Harness,
) -> None:
    resolver, target = harness.manual()
    channel = harness.dial(target)
    wait_until(lambda: channel.connectivity() is grpc.ChannelConnectivity.TRANSIENT_FAILURE)
    empty = f"{target}: round_robin: there is no address available"
    assert {error.details() for error in every_kind(channel)} == {empty}

    resolver.close()  # its watcher ends, and resolving again fails: the resolver is closed
    wait_until(
        lambda: "resolver is closed" in str(channel.balancer.resolver_error),
        what="the resolver's error",
    )
    errors = every_kind(channel)
    assert [e.code() for e in errors] == [Code.UNAVAILABLE] * KINDS
    last = "; last resolver error: manual: resolver is closed"
    assert {e.details() for e in errors} == {f"{empty}{last}"}


# -- deadlines --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("timeout", "shown"), [(0.05, "0.05s"), (1 / 30, "0.0333s")])
def test_a_deadline_while_waiting_for_an_address_says_the_calls_timeout_rounded(
    harness: Harness, timeout: float, shown: str
) -> None:
    _, target = harness.manual()
    channel = harness.dial(target)
    errors = every_kind(channel, timeout=timeout, wait_for_ready=True)
    assert [error.code() for error in errors] == [Code.DEADLINE_EXCEEDED] * KINDS
    assert {error.details() for error in errors} == {
        f"{target}: no address became ready within {shown}"
    }


# -- a picker that raises ---------------------------------------------------------------------------


class _Raising(Picker):
    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        raise RuntimeError("the picker is broken")


class Broken(PickerBalancer):
    """A balancer whose picker raises on every pick."""

    name = "broken"

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        return _Raising()


@pytest.mark.parametrize("wait_for_ready", [False, True])
def test_a_picker_that_raises_fails_every_kind_of_call_with_internal(
    harness: Harness, caplog: pytest.LogCaptureFixture, wait_for_ready: bool
) -> None:
    (server,) = harness.start_servers(1)
    _, channel = balanced_channel(harness, Broken, server)
    with caplog.at_level(logging.DEBUG, logger="naming.channel"):
        errors = every_kind(channel, timeout=DEFAULT_TIMEOUT, wait_for_ready=wait_for_ready)
        errors += every_kind(channel, timeout=DEFAULT_TIMEOUT, wait_for_ready=wait_for_ready)
    assert all(isinstance(error, grpc.RpcError) for error in errors)
    assert [error.code() for error in errors] == [Code.INTERNAL] * 2 * KINDS
    methods = [PORT] * 3 + [COUNT] * 3 + [PORTS, ECHO]
    for error, method in zip(errors, methods * 2, strict=True):
        assert error.details() == (
            f"channel: {channel.target}: the balancer failed to pick an address for {method}: "
            "RuntimeError: the picker is broken"
        )
    assert server.calls == 0
    records = [r for r in caplog.records if "the balancer's get() raised" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.ERROR] + [logging.DEBUG] * (2 * KINDS - 1)
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in records)


# -- a closed channel -------------------------------------------------------------------------------


def refusals(channel: Any) -> list[str]:
    """What each kind of call made on ``channel`` raises: ``type: message`` (none: "returned")."""
    found = []
    unary, stream_unary = channel.unary_unary(PORT), channel.stream_unary(COUNT)
    calls: list[Callable[[], Any]] = [
        lambda: unary(b""),
        lambda: unary.with_call(b""),
        lambda: unary.future(b""),
        lambda: stream_unary(iter([b"a"])),
        lambda: stream_unary.with_call(iter([b"a"])),
        lambda: stream_unary.future(iter([b"a"])),
        lambda: channel.unary_stream(PORTS)(b"1"),
        lambda: channel.stream_stream(ECHO)(iter([b"x"])),
    ]
    for call in calls:
        try:
            call()
        except Exception as exc:
            found.append(f"{type(exc).__name__}: {exc}")
        else:
            found.append("returned")
    return found


def test_a_call_after_close_raises_the_value_error_grpc_raises(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    channel = harness.dial(f"static:///{server.address}")
    assert call_port(channel, wait_for_ready=True) == "s0"
    channel.close()
    native = grpc.insecure_channel(server.address)
    native.close()
    expected = refusals(native)
    assert (
        expected
        == ["ValueError: Cannot invoke RPC on closed channel!"] * 2
        + ["ValueError: Cannot invoke RPC: Channel closed!"]
        + ["ValueError: Cannot invoke RPC on closed channel!"] * 2
        + ["ValueError: Cannot invoke RPC: Channel closed!"] * 3
    )
    assert refusals(channel) == expected
    assert server.calls == 1


# -- dial() checks its arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"options": "grpc.x=1"}, "channel: options must be a sequence of (str, value) pairs"),
        ({"options": {"grpc.x": 1}}, "channel: options must be a sequence"),
        ({"options": 5}, "channel: options must be a sequence"),
        ({"options": ["grpc.x"]}, "channel: options: 'grpc.x' is not a (str, value) pair"),
        ({"options": [("grpc.x",)]}, "channel: options: ('grpc.x',) is not a (str, value) pair"),
        ({"options": [(1, 2)]}, "channel: options: (1, 2) is not a (str, value) pair"),
        ({"options": [("grpc.x", None)]}, "channel: options: the value of 'grpc.x' must be"),
        ({"credentials": "tls"}, "channel: credentials must be a grpc.ChannelCredentials or None"),
        (
            {"credentials": grpc.access_token_call_credentials("t")},
            "combine call credentials with grpc.composite_channel_credentials",
        ),
    ],
)
def test_dial_refuses_bad_credentials_and_options_before_anything_starts(
    harness: Harness, arguments: dict[str, Any], message: str
) -> None:
    resolver, target = harness.manual(["127.0.0.1:1"])
    with pytest.raises(TypeError, match=re.escape(message)):
        naming.dial(target, **arguments)
    assert resolver.watchers == 0  # nothing was resolved


def test_dial_takes_options_as_any_iterable_of_pairs(harness: Harness) -> None:
    (server,) = harness.start_servers(1)
    pairs = iter([["grpc.primary_user_agent", "errors-test/1.0"]])
    channel = harness.dial(f"static:///{server.address}", options=pairs)  # type: ignore[arg-type]
    assert call_port(channel, wait_for_ready=True) == "s0"
    assert server.user_agents[0].startswith("errors-test/1.0")


# -- DEBUG logs -----------------------------------------------------------------------------------


def test_debug_logs_each_list_update_and_each_state_change(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    (server,) = harness.start_servers(1)
    resolver, target = harness.manual([server])
    with caplog.at_level(logging.DEBUG, logger="naming.channel"):
        channel = harness.dial(target)
        wait_for_state(channel, server.address, READY)
        resolver.update([Update.delete(server.address)])
        wait_until(lambda: not channel.subchannels(), what="the subchannel to go")
    ours = [(r.name, r.getMessage()) for r in caplog.records if r.name.startswith("naming.channel")]
    assert all(name.startswith("naming.channel.") for name, _ in ours)
    lists = [message for _, message in ours if "address list applied" in message]
    assert lists == [
        f"channel: {target}: address list applied: 1 added, 0 removed; 1 subchannels",
        f"channel: {target}: address list applied: 0 added, 1 removed; 0 subchannels",
    ]
    states = [m for _, m in ours if m.startswith(f"channel: {server.address}: ")]
    assert states[0].startswith(f"channel: {server.address}: IDLE -> ")
    assert states[-1].endswith(" -> READY")
    assert all(" -> " in state for state in states)
