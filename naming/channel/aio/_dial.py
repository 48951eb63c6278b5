"""naming.aio.dial(): a balanced ``grpc.aio.Channel`` for a target."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any

from naming.core import Target

from .._dial import channel_arguments, checked_idempotent, started_balancer
from ._channel import BalancedChannel

__all__ = ["dial"]


def dial(
    target: Target | str,
    *,
    balancer: str = "round_robin",
    credentials: Any = None,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[Any] | None = None,
    idempotent: Iterable[str] = (),
    **balancer_options: Any,
) -> BalancedChannel:
    """A ``grpc.aio.Channel`` that balances every call over the addresses ``target`` resolves to.

    The asyncio twin of :func:`naming.dial`, with the same arguments and errors, plus
    ``interceptors``: ``grpc.aio`` client interceptors, run on every attempt of a call (a call
    picked again runs them again). Call it with the event loop running (from a coroutine); the
    channel belongs to that loop. It does not block, apart from starting the resolver (as
    ``naming.dial`` does); wait for it with ``await channel.channel_ready()`` or make calls with
    ``wait_for_ready=True``. Close it with ``await channel.close()`` or ``async with``.

    Raises RuntimeError when no event loop is running, TypeError naming a bad ``interceptors``,
    and everything :func:`naming.dial` raises, before anything starts.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "aio: naming.aio.dial() needs a running event loop: call it from a coroutine"
        ) from None
    options = channel_arguments(credentials, options)
    chosen_interceptors = _interceptors(interceptors)
    idempotent = checked_idempotent(idempotent)
    parsed, resolver, chosen = started_balancer(
        target, balancer, credentials, options, balancer_options
    )
    return BalancedChannel(
        str(parsed),
        chosen,
        resolver=resolver,
        credentials=credentials,
        options=options,
        interceptors=chosen_interceptors,
        idempotent=idempotent,
    )


def _interceptors(interceptors: Any) -> tuple[Any, ...]:
    """``interceptors`` as a tuple of grpc.aio client interceptors; TypeError naming a bad one."""
    import grpc

    if interceptors is None:
        return ()
    if isinstance(interceptors, str | bytes) or not isinstance(interceptors, Iterable):
        raise TypeError(
            f"aio: interceptors must be a sequence of grpc.aio client interceptors, "
            f"not {type(interceptors).__name__}"
        )
    chosen = tuple(interceptors)
    for interceptor in chosen:
        if not isinstance(interceptor, grpc.aio.ClientInterceptor):
            raise TypeError(
                f"aio: interceptors: {interceptor!r} is not a grpc.aio client interceptor "
                "(UnaryUnaryClientInterceptor, UnaryStreamClientInterceptor, ...)"
            )
    return chosen
