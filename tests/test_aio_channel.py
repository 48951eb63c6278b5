"""naming.aio.dial: the asyncio balanced channel over real grpc.aio servers on 127.0.0.1.

Calls of every kind and their call objects, generated stubs, interceptors, the put contract,
cancellation, close(), a server stopped and restarted under load, and leaks over many cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc
import pytest

import naming.aio
from balancers import DoneInfo, RoundRobin
from naming import Address, Update
from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT
from naming.testing.aio import AioEchoServer, call_port, run
from naming.testing.servers import COUNT, ECHO, FAIL, HOLD, PORT, PORTS
from tests._aio import Harness, wait_for_server, wait_until

Code = grpc.StatusCode
READY = grpc.ChannelConnectivity.READY


async def new_tasks(before: set[asyncio.Task[Any]], grace: float = SHORT_TIMEOUT * 10) -> list[str]:
    """The tasks running now that were not in ``before`` (the servers' own, the test's), after
    at most ``grace`` s for them to end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        left = [
            task
            for task in asyncio.all_tasks()
            if task not in before
            and not task.done()
            and task is not asyncio.current_task()
            and not _server_task(task)
        ]
        if not left or loop.time() >= deadline:
            return sorted(map(repr, left))
        await asyncio.sleep(0.01)


def _server_task(task: asyncio.Task[Any]) -> bool:
    """A task of grpc.aio's server (it starts one per call it waits for): the servers' business."""
    return getattr(task.get_coro(), "__qualname__", "").startswith("AioServer.")


def static(*servers: AioEchoServer) -> str:
    return "static:///" + ",".join(server.address for server in servers)


async def held(server: AioEchoServer, count: int = 1) -> None:
    async def holding() -> bool:
        return server.held >= count

    await wait_until(holding, f"{count} calls held by {server.name}")


# -- calls --------------------------------------------------------------------------------------


def test_unary_call_object_has_grpc_aio_methods() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            channel = await harness.ready(static(*harness.servers))
            call = channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT)
            assert isinstance(call, grpc.aio.UnaryUnaryCall)
            remaining = call.time_remaining()
            assert remaining is not None and 0 < remaining <= DEFAULT_TIMEOUT
            ended: list[Any] = []
            call.add_done_callback(ended.append)
            assert await call in (b"s0", b"s1")
            assert await call.code() is Code.OK
            assert await call.details() == ""
            assert isinstance(await call.initial_metadata(), grpc.aio.Metadata)
            assert isinstance(await call.trailing_metadata(), grpc.aio.Metadata)
            await asyncio.sleep(0)
            assert ended == [call] and call.done() and not call.cancelled()
            assert not call.cancel()  # done: nothing to cancel

            failed = channel.unary_unary(FAIL)(b"", timeout=DEFAULT_TIMEOUT)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await failed
            assert info.value.code() is Code.NOT_FOUND
            assert await failed.code() is Code.NOT_FOUND
            assert (await failed.details()).endswith(": nothing here")

    run(main())


def test_calls_of_every_kind_rotate_and_stream() -> None:
    async def main() -> None:
        async with Harness(3) as harness:
            channel = await harness.ready(static(*harness.servers))
            # woken by each subchannel that becomes READY, not only by the channel's own state
            assert await channel.wait_for_subchannels(_ready(3), DEFAULT_TIMEOUT)
            names = [await call_port(channel) for _ in range(6)]
            assert names == ["s0", "s1", "s2"] * 2

            stream = channel.unary_stream(PORTS)(b"3", timeout=DEFAULT_TIMEOUT)
            first = await stream.read()
            assert [await stream.read(), await stream.read()] == [first] * 2
            assert await stream.read() is grpc.aio.EOF
            assert await stream.code() is Code.OK
            iterated = channel.unary_stream(PORTS)(b"2", timeout=DEFAULT_TIMEOUT)
            assert len({r async for r in iterated}) == 1

            async def three() -> AsyncIterator[bytes]:
                for request in (b"a", b"b", b"c"):
                    yield request

            counted = await channel.stream_unary(COUNT)(three(), timeout=DEFAULT_TIMEOUT)
            assert counted.endswith(b":3")
            writer = channel.stream_unary(COUNT)(timeout=DEFAULT_TIMEOUT)
            await writer.write(b"x")
            await writer.done_writing()
            assert (await writer).endswith(b":1")

            chat = channel.stream_stream(ECHO)(timeout=DEFAULT_TIMEOUT)
            await chat.write(b"hi")
            echoed = await chat.read()
            assert echoed.endswith(b":hi")
            await chat.done_writing()
            assert await chat.read() is grpc.aio.EOF
            assert await chat.code() is Code.OK

    run(main())


def _ready(count: int) -> Any:
    def ready(subchannels: Any) -> bool:
        return len(subchannels) == count and all(s.state is READY for s in subchannels.values())

    return ready


async def _all_ready(channel: Any, count: int) -> bool:
    subchannels = channel.subchannels().values()
    return len(subchannels) == count and all(s.state is READY for s in subchannels)


def test_a_stream_waits_for_a_ready_address_and_fails_fast_without_one() -> None:
    async def main() -> None:
        async with Harness() as harness:
            server = AioEchoServer("late")
            harness.servers.append(server)
            resolver, target = harness.manual()
            channel = harness.dial(target)
            failing = channel.unary_stream(PORTS)(b"1", timeout=DEFAULT_TIMEOUT)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await failing.read()
            assert info.value.code() is Code.UNAVAILABLE
            assert isinstance(info.value, naming.aio.CallError)
            assert await failing.code() is Code.UNAVAILABLE
            assert await failing.initial_metadata() == grpc.aio.Metadata()

            waiting = channel.unary_stream(PORTS)(
                b"2", timeout=DEFAULT_TIMEOUT, wait_for_ready=True
            )
            await asyncio.sleep(SHORT_TIMEOUT)
            assert not waiting.done()
            await server.start()
            resolver.update([Update.add(server.address)])
            assert [r async for r in waiting] == [b"late", b"late"]

    run(main())


def test_generated_stubs_work_unchanged(greeter: tuple[ModuleType, ModuleType]) -> None:
    pb2, pb2_grpc = greeter

    class Greeter(pb2_grpc.GreeterServicer):  # type: ignore[misc, name-defined]
        def __init__(self, name: str) -> None:
            self.name = name

        async def SayHello(self, request: Any, context: Any) -> Any:
            return pb2.HelloReply(message=f"Hello {request.name}", server=self.name)

        async def SayHelloEach(self, request: Any, context: Any) -> AsyncIterator[Any]:
            for who in request.name.split(","):
                yield pb2.HelloReply(message=f"Hello {who}", server=self.name)

        async def SayHelloAll(self, requests: Any, context: Any) -> Any:
            names = [request.name async for request in requests]
            return pb2.HelloReply(message="Hello " + ", ".join(names), server=self.name)

        async def SayHelloChat(self, requests: Any, context: Any) -> AsyncIterator[Any]:
            async for request in requests:
                yield pb2.HelloReply(message=f"Hello {request.name}", server=self.name)

    def services(server: AioEchoServer, grpc_server: Any) -> None:
        pb2_grpc.add_GreeterServicer_to_server(Greeter(server.name), grpc_server)

    async def main() -> None:
        async with Harness() as harness:
            servers = await harness.start_servers(2, services=services)
            channel = await harness.ready(static(*servers))
            await wait_until(lambda: _all_ready(channel, 2), "two ready subchannels")
            stub = pb2_grpc.GreeterStub(channel)
            replies = [await stub.SayHello(pb2.HelloRequest(name="you")) for _ in range(4)]
            assert {r.message for r in replies} == {"Hello you"}
            assert [r.server for r in replies] == ["s0", "s1", "s0", "s1"]
            each = [r.message async for r in stub.SayHelloEach(pb2.HelloRequest(name="a,b"))]
            assert each == ["Hello a", "Hello b"]
            requests = iter([pb2.HelloRequest(name="a"), pb2.HelloRequest(name="b")])
            assert (await stub.SayHelloAll(requests)).message == "Hello a, b"
            chat = stub.SayHelloChat()
            await chat.write(pb2.HelloRequest(name="c"))
            assert (await chat.read()).message == "Hello c"
            await chat.done_writing()

    run(main())


# -- interceptors ----------------------------------------------------------------------------------


class Rerouting(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Sends FAIL calls to PORT instead, adds metadata, and records every attempt it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        self.seen.append((method, details.metadata))
        if method == FAIL:
            details = details._replace(method=PORT.encode())
        metadata = grpc.aio.Metadata(*(details.metadata or ()), ("x-intercepted", "yes"))
        return await continuation(details._replace(metadata=metadata), request)


class Counting(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.calls += 1
        return await continuation(details, request)


def test_interceptors_run_on_every_call() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            rerouting, counting = Rerouting(), Counting()
            channel = await harness.ready(
                static(*harness.servers), interceptors=[rerouting, counting]
            )
            assert await channel.unary_unary(FAIL)(b"", timeout=DEFAULT_TIMEOUT) in (b"s0", b"s1")
            assert await call_port(channel, metadata=(("k", "v"),)) in ("s0", "s1")
            assert [method for method, _ in rerouting.seen] == [FAIL, PORT]
            assert tuple(rerouting.seen[1][1]) == (("k", "v"),)
            assert [r async for r in channel.unary_stream(PORTS)(b"2")] != []
            assert counting.calls == 1

    run(main())


def test_bad_interceptors_are_refused_by_name() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match=r"aio: interceptors: 'nope' is not a grpc\.aio"):
            naming.aio.dial("static:///127.0.0.1:1", interceptors=["nope"])
        with pytest.raises(TypeError, match="aio: interceptors must be a sequence"):
            naming.aio.dial("static:///127.0.0.1:1", interceptors=Rerouting())

    run(main())


# -- the put contract and the policy --------------------------------------------------------------


class Recording(RoundRobin):
    """round_robin whose put records every DoneInfo, and counts abandoned picks."""

    name = "recording_round_robin"

    def __init__(self, resolver: Any) -> None:
        super().__init__(resolver)
        self.infos: list[DoneInfo] = []
        self.abandoned = 0

    def get(
        self, *, blocking_wait: bool = False, timeout: float | None = None, info: Any = None
    ) -> Any:
        address, _ = super().get(blocking_wait=blocking_wait, timeout=timeout, info=info)
        balancer = self

        class Put:
            def __call__(self, done: DoneInfo) -> None:
                balancer.infos.append(done)

            def abandon(self) -> None:
                balancer.abandoned += 1

        return address, Put()


async def recording_channel(harness: Harness, target: str) -> tuple[Recording, Any]:
    balancer = Recording(naming.build_resolver(target))
    balancer.start(target)
    channel = harness.adopt(naming.aio.BalancedChannel(target, balancer))
    await asyncio.wait_for(channel.channel_ready(), DEFAULT_TIMEOUT)
    return balancer, channel


def test_put_gets_one_done_info_per_attempt_that_ran() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            balancer, channel = await recording_channel(harness, static(s0))
            await call_port(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary(FAIL)(b"", timeout=DEFAULT_TIMEOUT)
            assert [r async for r in channel.unary_stream(PORTS)(b"1")] == [b"s0"]
            unawaited = channel.unary_unary(PORT)(b"", timeout=DEFAULT_TIMEOUT)
            await wait_until(_done(unawaited), "the unawaited call to end")
            await wait_until(_count(balancer, 4), "four DoneInfos")
            assert [info.code for info in balancer.infos] == [
                Code.OK,
                Code.NOT_FOUND,
                Code.OK,
                Code.OK,
            ]
            assert all(info.latency >= 0 for info in balancer.infos)
            assert balancer.abandoned == 0
            assert all(sub.in_flight == 0 for sub in channel.subchannels().values())

    run(main())


def _done(call: Any) -> Any:
    async def done() -> bool:
        return bool(call.done())

    return done


def _count(balancer: Recording, count: int) -> Any:
    async def counted() -> bool:
        return len(balancer.infos) >= count

    return counted


def test_a_wait_for_ready_call_is_picked_again_after_failing_to_connect() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            dead = "127.0.0.1:1"  # nothing listens there: every attempt fails to connect
            balancer, channel = await recording_channel(harness, f"static:///{dead},{s0.address}")
            names = [await call_port(channel, wait_for_ready=True) for _ in range(6)]
            assert names == ["s0"] * 6
            assert Code.UNAVAILABLE not in [info.code for info in balancer.infos]

    run(main())


def test_a_balancer_that_raises_gives_internal() -> None:
    class Broken(RoundRobin):
        name = "broken"

        def get(self, **kwargs: Any) -> Any:
            raise ZeroDivisionError("picker bug")

    async def main() -> None:
        async with Harness(1) as harness:
            target = static(*harness.servers)
            balancer = Broken(naming.build_resolver(target))
            balancer.start(target)
            channel = harness.adopt(naming.aio.BalancedChannel(target, balancer))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call_port(channel)
            assert info.value.code() is Code.INTERNAL
            assert "ZeroDivisionError: picker bug" in info.value.details()

    run(main())


# -- cancellation and close ------------------------------------------------------------------------


def test_a_cancelled_call_leaves_no_task_or_count_behind() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            balancer, channel = await recording_channel(harness, static(s0))
            before = asyncio.all_tasks()
            hold = channel.unary_unary(HOLD)

            async def released() -> bool:
                return s0.held == 0

            call = hold(b"", timeout=DEFAULT_TIMEOUT)
            await held(s0)
            assert call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert call.cancelled() and call.done()
            assert await call.code() is Code.CANCELLED
            await wait_until(released, "the server to see the cancellation")

            waiter = asyncio.ensure_future(hold(b"", timeout=DEFAULT_TIMEOUT))
            await held(s0)
            waiter.cancel()  # the coroutine awaiting the call is cancelled: so is the call
            with pytest.raises(asyncio.CancelledError):
                await waiter
            await wait_until(released, "the server to see the cancellation")
            with pytest.raises(asyncio.TimeoutError):  # through wait_for as well
                await asyncio.wait_for(hold(b"", timeout=DEFAULT_TIMEOUT), SHORT_TIMEOUT)

            await wait_until(released, "the server to see the cancellation")
            assert all(sub.in_flight == 0 for sub in channel.subchannels().values())
            assert [info.code for info in balancer.infos] == [Code.CANCELLED] * 3
            assert await new_tasks(before) == []

    run(main())


def test_a_call_cancelled_while_it_waits_for_an_address() -> None:
    async def main() -> None:
        async with Harness() as harness:
            _, target = harness.manual()
            channel = harness.dial(target)
            before = asyncio.all_tasks()
            call = channel.unary_unary(PORT)(b"", wait_for_ready=True)
            stream = channel.unary_stream(PORTS)(b"1", wait_for_ready=True)
            await asyncio.sleep(SHORT_TIMEOUT)
            assert call.cancel() and stream.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            assert await call.code() is Code.CANCELLED
            assert await stream.code() is Code.CANCELLED
            assert await new_tasks(before) == []

    run(main())


def test_close_ends_waiting_calls_at_once_and_cancels_calls_in_flight() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            resolver, target = harness.manual([s0])
            channel = await harness.ready(target)
            running = channel.unary_unary(HOLD)(b"", timeout=DEFAULT_TIMEOUT)
            await held(s0)
            resolver.update([Update.delete(s0.address)])

            async def removed() -> bool:
                return Address(s0.address) not in channel.subchannels()

            await wait_until(removed, "s0 to leave the list")
            waiting = [
                channel.unary_unary(PORT)(b"", wait_for_ready=True) for _ in range(5)
            ]  # no deadline: only close() can end them
            await asyncio.sleep(SHORT_TIMEOUT)
            await channel.close()
            for call in [*waiting, running]:
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await asyncio.wait_for(call, SHORT_TIMEOUT * 10)
                assert info.value.code() is Code.CANCELLED
                assert info.value.details() == "channel: the channel is closed"
            with pytest.raises(grpc.aio.UsageError, match="Channel is closed"):
                channel.unary_unary(PORT)(b"")
            await channel.close()  # idempotent
            assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
            assert channel.subchannels() == {}

    run(main())


def test_close_with_grace_lets_calls_in_flight_finish() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            (s0,) = harness.servers
            channel = await harness.ready(static(s0))
            running = channel.unary_unary(HOLD)(b"", timeout=DEFAULT_TIMEOUT)
            await held(s0)
            closing = asyncio.ensure_future(channel.close(grace=DEFAULT_TIMEOUT))
            await asyncio.sleep(SHORT_TIMEOUT)
            assert not closing.done()
            s0.release.set()
            assert await running == b"s0"
            await asyncio.wait_for(closing, DEFAULT_TIMEOUT)

    run(main())


# -- load, failover, leaks -----------------------------------------------------------------------


def test_sixteen_coroutines_lose_no_wait_for_ready_call_when_a_server_restarts() -> None:
    async def main() -> None:
        async with Harness(3) as harness:
            _, target = harness.manual()
            registrations = [
                await naming.aio.register_server(
                    server.grpc_server, target, server.address, signals=()
                )
                for server in harness.servers
            ]
            channel = await harness.ready(target)
            victim = harness.servers[1]
            stop = asyncio.Event()
            answers: list[str] = []
            failures: list[BaseException] = []

            async def caller() -> None:
                for _ in range(10_000):  # bounded; ends when told to stop
                    if stop.is_set():
                        return
                    try:
                        answers.append(await call_port(channel, wait_for_ready=True))
                    except grpc.RpcError as error:
                        failures.append(error)

            callers = [asyncio.ensure_future(caller()) for _ in range(16)]
            try:
                await wait_for_server(channel, "s1")
                # As a server goes away cleanly: its record goes, it drains, then stops; then it
                # starts again on its port and registers again.
                await registrations[1].stop(grace=1.0)
                await victim.stop()  # the harness's bookkeeping: grpc's server has stopped
                before = len(answers)
                await wait_until(_more(answers, before + 200), "calls on the two others")
                await victim.start()
                registrations[1] = await naming.aio.register_server(
                    victim.grpc_server, target, victim.address, signals=()
                )
                restarted = len(answers)
                await wait_until(_answered_by(answers, restarted, "s1"), "s1 to answer again")
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*callers), DEFAULT_TIMEOUT)
                for registration in registrations:
                    await registration.stop(grace=0)
            assert failures == []
            assert {"s0", "s1", "s2"} <= set(answers)

    run(main())


def _more(answers: list[str], count: int) -> Any:
    async def more() -> bool:
        return len(answers) >= count

    return more


def _answered_by(answers: list[str], start: int, name: str) -> Any:
    async def answered() -> bool:
        return name in answers[start:]

    return answered


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def test_two_hundred_dial_call_close_cycles_leave_nothing_behind() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            target = static(*harness.servers)
            warm = naming.aio.dial(target)
            await call_port(warm, wait_for_ready=True)
            await warm.close()
            sockets = _sockets()
            before = asyncio.all_tasks()
            for _ in range(200):
                channel = naming.aio.dial(target)
                assert await call_port(channel, wait_for_ready=True) in ("s0", "s1")
                await channel.close()
                assert channel.subchannels() == {}
            assert await new_tasks(before, DEFAULT_TIMEOUT) == []

            async def settled() -> bool:
                return _sockets() <= sockets

            await wait_until(settled, f"the sockets to go back to {sockets} (now {_sockets()})")

    run(main())


def test_dial_needs_a_running_loop_and_checks_its_arguments() -> None:
    with pytest.raises(RuntimeError, match="needs a running event loop"):
        naming.aio.dial("static:///127.0.0.1:1")

    async def main() -> None:
        with pytest.raises(TypeError, match="channel: options"):
            naming.aio.dial("static:///127.0.0.1:1", options="nope")
        with pytest.raises(naming.UnknownBalancerError):
            naming.aio.dial("static:///127.0.0.1:1", balancer="nope")
        with pytest.raises(ValueError, match="idempotent"):
            naming.aio.dial("static:///127.0.0.1:1", idempotent=["nope"])

    run(main())


def test_channel_ready_and_state_changes() -> None:
    async def main() -> None:
        async with Harness() as harness:
            server = AioEchoServer("later")
            harness.servers.append(server)
            resolver, target = harness.manual()
            channel = harness.dial(target)
            ready = asyncio.ensure_future(channel.channel_ready())
            await asyncio.sleep(SHORT_TIMEOUT)
            assert not ready.done()
            await server.start()
            resolver.update([Update.add(server.address)])
            await asyncio.wait_for(ready, DEFAULT_TIMEOUT)
            assert channel.get_state() is READY
            assert Address(server.address) in channel.subchannels()
            changed = asyncio.ensure_future(channel.wait_for_state_change(READY))
            await channel.close()
            await asyncio.wait_for(changed, DEFAULT_TIMEOUT)
            with pytest.raises(grpc.aio.UsageError):
                await channel.channel_ready()

    run(main())


def test_wait_for_subchannels_is_woken_by_each_subchannel() -> None:
    async def main() -> None:
        async with Harness(2) as harness:
            s0, s1 = harness.servers
            await s1.stop()
            channel = await harness.ready(static(s0, s1))  # READY with s0 alone
            await s1.start()  # the channel's state stays READY while s1's subchannel becomes so
            # no timeout of its own: only the subchannel's change can end the wait
            assert await asyncio.wait_for(
                channel.wait_for_subchannels(_ready(2), None), DEFAULT_TIMEOUT
            )

    run(main())
