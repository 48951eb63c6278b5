"""naming.dial(): a balanced ``grpc.Channel`` for a target.

This module imports grpc (through :mod:`naming.channel._channel`) only when ``dial()`` runs, so that
``naming.dial`` can be named without loading gRPC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from naming.core import Resolver, Target, as_target, build_resolver

if TYPE_CHECKING:
    from balancers import Balancer

    from ._channel import BalancedChannel

__all__ = ["channel_arguments", "checked_idempotent", "dial", "started_balancer"]


def dial(
    target: Target | str,
    *,
    balancer: str = "round_robin",
    credentials: Any = None,
    options: Sequence[tuple[str, Any]] = (),
    idempotent: Iterable[str] = (),
    **balancer_options: Any,
) -> BalancedChannel:
    """A ``grpc.Channel`` that balances every call over the addresses ``target`` resolves to.

    The backend is picked by the target's scheme and the balancer by name (``balancer_options`` go
    to it). ``credentials`` (``grpc.ChannelCredentials``; None for plaintext) and ``options`` (grpc
    channel arguments) apply to the connection to every address. Generated stubs work unchanged.

    ``idempotent`` lists the methods (``"/pkg.Service/Method"``) and whole services
    (``"/pkg.Service/*"``) whose calls may safely run more than once: a unary-unary call to one of
    them that fails with UNAVAILABLE is picked again like a call that never left the client
    (docs/channel.md, "Idempotent methods"). None by default.

    Does not block: the channel connects in the background. Wait for it with
    ``grpc.channel_ready_future(channel).result(timeout)``, or make calls with
    ``wait_for_ready=True``. Close it with ``close()`` or a ``with`` block.

    Raises, before anything starts: TypeError naming ``credentials`` (not None nor a
    ``grpc.ChannelCredentials``) or ``options`` (not a sequence of ``(str, value)`` pairs),
    TargetError or UnknownSchemeError for a bad target, UnknownBalancerError for an unknown
    balancer, TypeError for options the balancer does not take, ValueError for a bad
    ``idempotent`` entry; then whatever the resolver raises when it starts.
    """
    from ._channel import BalancedChannel

    options = channel_arguments(credentials, options)
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
        idempotent=idempotent,
    )


def checked_idempotent(idempotent: Iterable[str]) -> tuple[str, ...]:
    """``idempotent`` as a tuple once every entry is known to be good: ValueError or TypeError
    naming the first bad one, before anything is started (a str is refused, not read as its
    characters)."""
    from ._policy import idempotent_methods

    entries = idempotent if isinstance(idempotent, str | bytes) else tuple(idempotent)
    idempotent_methods(entries)  # raises for a str, or a bad entry
    return tuple(entries)


def started_balancer(
    target: Target | str,
    balancer: str,
    credentials: Any,
    options: tuple[tuple[str, Any], ...],
    balancer_options: dict[str, Any],
) -> tuple[Target, Resolver, Balancer]:
    """(the parsed target, its resolver, the balancer started on it): what every dial() starts;
    if anything fails, what was started is closed again."""
    from balancers import BalancerConfig, create

    parsed = as_target(target)
    resolver = build_resolver(parsed)
    try:
        chosen = create(balancer, resolver=resolver, **balancer_options)
        try:
            chosen.start(str(parsed), BalancerConfig(credentials=credentials, options=options))
        except BaseException:
            chosen.close()
            raise
    except BaseException:
        resolver.close()
        raise
    return parsed, resolver, chosen


def channel_arguments(credentials: Any, options: Any) -> tuple[tuple[str, Any], ...]:
    """``options`` as a tuple, once ``credentials`` and ``options`` are known to be what grpc
    takes: TypeError naming the bad one otherwise (grpc would refuse them only later, on the
    channel's thread, when it dials each address)."""
    import grpc

    if credentials is not None and not isinstance(credentials, grpc.ChannelCredentials):
        hint = ""
        if isinstance(credentials, grpc.CallCredentials):
            hint = " (combine call credentials with grpc.composite_channel_credentials)"
        raise TypeError(
            "channel: credentials must be a grpc.ChannelCredentials or None, "
            f"not {type(credentials).__name__}{hint}"
        )
    if isinstance(options, str | bytes | Mapping) or not isinstance(options, Iterable):
        raise TypeError(
            "channel: options must be a sequence of (str, value) pairs, "
            f"not {type(options).__name__}"
        )
    checked = tuple(options)
    for option in checked:
        if (
            not isinstance(option, tuple | list)
            or len(option) != 2
            or not isinstance(option[0], str)
        ):
            raise TypeError(f"channel: options: {option!r} is not a (str, value) pair")
        value = option[1]
        if not isinstance(value, int | float | str | bytes) and not hasattr(value, "__int__"):
            raise TypeError(
                f"channel: options: the value of {option[0]!r} must be an int, float, str or "
                f"bytes, not {type(value).__name__}"
            )
    return tuple((name, value) for name, value in checked)
