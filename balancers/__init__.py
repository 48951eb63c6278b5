"""Balancers with the legacy grpc-go v1 ``Balancer`` shape: start, up, get, notify, close.

Built-ins: ``round_robin`` (:class:`RoundRobin`), ``pick_first`` (:class:`PickFirst`), ``random``,
``weighted_round_robin``, ``least_request``, ``p2c_ewma`` and ``ring_hash``. More come
from plugins in the ``naming.balancers`` entry-point group; :func:`create` builds any of them by name.
A policy subclasses :class:`PickerBalancer` and writes ``build_picker()``; one that keeps statistics
per address also writes ``new_address_state()`` (:class:`InFlight` counts calls in flight).
"""

from __future__ import annotations

import inspect
from typing import Any

from naming.core import Resolver, registry

from ._balancer import Balancer, BalancerConfig, DoneInfo, Down, PickInfo, Put
from ._notify import Notifications
from ._picker import Picker, PickerBalancer, PickerState
from ._store import InFlight, TrackedPut
from .leastrequest import LeastRequest
from .p2cewma import P2CEwma
from .pickfirst import PickFirst
from .randompick import Random
from .ringhash import RingHash
from .roundrobin import RoundRobin
from .weightedroundrobin import WeightedRoundRobin

__all__ = [
    "Balancer",
    "BalancerConfig",
    "DoneInfo",
    "Down",
    "InFlight",
    "LeastRequest",
    "Notifications",
    "P2CEwma",
    "PickFirst",
    "PickInfo",
    "Picker",
    "PickerBalancer",
    "PickerState",
    "Put",
    "Random",
    "RingHash",
    "RoundRobin",
    "TrackedPut",
    "WeightedRoundRobin",
    "create",
]


def create(name: str, resolver: Resolver | None = None, **options: Any) -> Balancer:
    """Build the balancer installed as ``name`` (through plugins) with ``resolver`` and ``options``.

    Raises UnknownBalancerError when no balancer has that name, TypeError naming the bad option.
    """
    cls: Any = registry().balancer(name)  # a class of the core's BalancerLike shape
    try:
        inspect.signature(cls).bind(resolver=resolver, **options)
    except TypeError as exc:
        raise TypeError(f"{name}: bad options {sorted(options)}: {exc}") from None
    balancer: Balancer = cls(resolver=resolver, **options)
    return balancer
