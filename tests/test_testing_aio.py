"""naming.testing.aio: the bounded runner, its check for leaked tasks, and the aio echo servers."""

from __future__ import annotations

import asyncio
import threading

import grpc
import pytest

from naming.core import DeadlineExceededError
from naming.testing import SHORT_TIMEOUT
from naming.testing.aio import AioEchoServer, AioHarness, call_port, run, tasks_left
from naming.testing.servers import COUNT, ECHO, FAIL, HOLD, PORTS


def test_run_returns_the_result_of_the_coroutine() -> None:
    async def main() -> int:
        await asyncio.sleep(0)
        return 42

    assert run(main()) == 42


def test_run_fails_naming_a_task_the_test_left_running() -> None:
    async def leaves_a_task() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="forgotten")

    with pytest.raises(AssertionError, match=r"tasks still running after the test: .*forgotten"):
        run(leaves_a_task(), grace=SHORT_TIMEOUT)


def test_run_waits_for_a_task_that_ends_within_the_grace() -> None:
    ended = []

    async def short() -> None:
        await asyncio.sleep(0.01)
        ended.append(True)

    async def leaves_a_short_task() -> None:
        asyncio.get_running_loop().create_task(short())

    run(leaves_a_short_task())
    assert ended == [True]


def test_run_stops_a_coroutine_that_runs_too_long() -> None:
    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(DeadlineExceededError, match=r"forever did not finish within 0\.05s"):
        run(forever(), timeout=SHORT_TIMEOUT)
    assert cancelled == [True]


def test_the_error_of_the_coroutine_wins_over_its_leftover_tasks() -> None:
    async def fails() -> None:
        asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="orphan")
        raise KeyError("the test's own")

    with pytest.raises(KeyError, match="the test's own") as caught:
        run(fails(), grace=SHORT_TIMEOUT)
    assert any("orphan" in note for note in getattr(caught.value, "__notes__", []))


def test_a_timeout_error_of_the_test_itself_is_not_taken_for_the_run_timeout() -> None:
    async def times_out() -> None:
        raise DeadlineExceededError("the test's own deadline")

    with pytest.raises(DeadlineExceededError, match="the test's own deadline"):
        run(times_out())


def test_run_refuses_what_is_not_a_coroutine() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match="testing: run\\(\\) needs a coroutine, got function"):
        run(main)  # type: ignore[arg-type]


def test_run_shuts_the_default_executor_down() -> None:
    before = set(threading.enumerate())

    async def uses_a_thread() -> str:
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    name = run(uses_a_thread())
    assert name.startswith("asyncio_")
    assert [t.name for t in threading.enumerate() if t not in before] == []


def test_tasks_left_lists_the_tasks_running_besides_the_caller() -> None:
    async def main() -> None:
        assert await tasks_left(0) == []
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(stop.wait(), name="waiter")
        left = await tasks_left(SHORT_TIMEOUT)
        assert len(left) == 1
        assert "waiter" in left[0]
        stop.set()
        await task
        assert await tasks_left(0) == []

    run(main())


def test_the_aio_servers_answer_every_method_with_their_name() -> None:
    async def main() -> None:
        async with AioHarness(2) as harness:
            s0, s1 = harness.servers
            async with grpc.aio.insecure_channel(s1.address) as channel:
                assert await call_port(channel) == "s1"
                assert [r async for r in channel.unary_stream(PORTS)(b"3")] == [b"s1"] * 3
                assert await channel.stream_unary(COUNT)(iter([b"a", b"b"])) == b"s1:2"
                echoed = [r async for r in channel.stream_stream(ECHO)(iter([b"x", b"y"]))]
                assert echoed == [b"s1:x", b"s1:y"]
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await channel.unary_unary(FAIL)(b"")
                assert failed.value.code() is grpc.StatusCode.NOT_FOUND
                assert failed.value.details() == "s1: nothing here"
            assert (s0.calls, s1.calls) == (0, 5)

    run(main())


def test_a_hold_call_answers_once_released() -> None:
    async def main() -> None:
        server = AioEchoServer("h")
        async with server, grpc.aio.insecure_channel(server.address) as channel:
            call = channel.unary_unary(HOLD)(b"", timeout=10)
            for _ in range(1000):  # bounded: about 10 s
                if server.held == 1:
                    break
                await asyncio.sleep(0.01)
            assert server.held == 1
            assert not call.done()
            server.release.set()
            assert await call == b"h"
            assert server.held == 0

    run(main())


def test_a_restarted_server_keeps_its_port_and_answers_again() -> None:
    async def main() -> None:
        async with AioHarness(1) as harness:
            (server,) = harness.servers
            port = server.port
            async with grpc.aio.insecure_channel(server.address) as channel:
                assert await call_port(channel) == "s0"
                await server.stop()
                assert not server.running
                with pytest.raises(grpc.aio.AioRpcError) as down:
                    await call_port(channel, timeout=SHORT_TIMEOUT * 4)
                assert down.value.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                )
                await server.restart()
                assert server.port == port
                assert await call_port(channel, wait_for_ready=True) == "s0"

    run(main())


def test_the_harness_closes_adopted_channels_and_reports_what_is_left() -> None:
    class Channel:
        def __init__(self) -> None:
            self.closed = False

        async def close(self) -> None:
            self.closed = True

        def subchannels(self) -> dict[str, object]:
            return {} if self.closed else {"127.0.0.1:1": object()}

    class KeepsOne(Channel):
        def subchannels(self) -> dict[str, object]:
            return {"127.0.0.1:2": object()}

    async def main() -> None:
        harness = AioHarness()
        good = harness.adopt(Channel())
        harness.adopt(KeepsOne())
        harness._leaks.grace = SHORT_TIMEOUT
        with pytest.raises(AssertionError, match=r"kept 1 subchannels: \['127.0.0.1:2'\]"):
            await harness.close()
        assert good.closed

    run(main())


def test_the_harness_reports_a_thread_left_running() -> None:
    stop = threading.Event()

    async def main() -> None:
        harness = AioHarness()
        harness._leaks.grace = SHORT_TIMEOUT
        thread = threading.Thread(target=stop.wait, args=(10,), name="left-behind")
        thread.start()
        try:
            with pytest.raises(AssertionError, match="thread left-behind still running"):
                await harness.close()
        finally:
            stop.set()
            thread.join(10)

    run(main())
