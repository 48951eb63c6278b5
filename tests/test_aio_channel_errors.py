"""Bad arguments to the asyncio channel's calls fail as grpc.aio's do, and leave nothing behind."""

from __future__ import annotations

import grpc
import pytest

from naming.testing import DEFAULT_TIMEOUT
from naming.testing.aio import run
from naming.testing.servers import PORT, PORTS
from tests._aio import Harness

Code = grpc.StatusCode


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream"])
def test_metadata_that_is_not_pairs_raises_type_error_at_the_call(kind: str) -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            channel = await harness.ready("static:///" + harness.servers[0].address)
            method = getattr(channel, kind)(PORT if kind == "unary_unary" else PORTS)
            with pytest.raises(TypeError):
                method(b"1", metadata=5)
            assert all(sub.in_flight == 0 for sub in channel.subchannels().values())

    run(main())


def test_a_metadata_key_grpc_refuses_fails_the_stream_with_internal() -> None:
    async def main() -> None:
        async with Harness(1) as harness:
            channel = await harness.ready("static:///" + harness.servers[0].address)
            stream = channel.unary_stream(PORTS)(
                b"1", metadata=(("Bad Key", "x"),), timeout=DEFAULT_TIMEOUT
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                _ = [response async for response in stream]
            assert info.value.code() is Code.INTERNAL
            assert await stream.code() is Code.INTERNAL

            async def drained() -> bool:
                return all(sub.in_flight == 0 for sub in channel.subchannels().values())

            assert await drained()

    run(main())
