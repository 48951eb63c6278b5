"""The Balancer interface (legacy grpc-go v1 ``grpc.Balancer``) and the values it passes around."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

from naming.core import Address

if TYPE_CHECKING:
    from ._notify import Notifications

__all__ = ["Balancer", "BalancerConfig", "DoneInfo", "Down", "PickInfo", "Put"]


@dataclass(frozen=True)
class BalancerConfig:
    """What the channel tells a balancer when it starts it (legacy ``BalancerConfig``).

    ``credentials`` and ``options`` are the channel's, for balancers that dial something themselves
    (a remote load balancer, a health service). Balancers may ignore them.
    """

    credentials: Any = None
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class PickInfo:
    """What a balancer learns about the call it picks an address for (grpc-go ``PickInfo``).

    ``method`` is the full method name (``"/pkg.Service/Method"``); ``metadata`` the call's
    metadata as given to the stub, as a tuple of ``(key, value)`` pairs. The channel passes one to
    every ``get()``; legacy callers pass none.
    """

    method: str = ""
    metadata: tuple[tuple[str, str | bytes], ...] = ()

    def value(self, key: str) -> str | bytes | None:
        """The first metadata value under ``key`` (keys compare in lower case), or None."""
        key = key.lower()
        for name, value in self.metadata:
            if name.lower() == key:
                return value
        return None


@dataclass(frozen=True)
class DoneInfo:
    """The outcome of one RPC, passed to ``put``: its gRPC status code, latency and error, if any."""

    code: Any = None
    latency: float = 0.0
    error: BaseException | None = None


Put: TypeAlias = Callable[..., None]
"""``put(info: DoneInfo | None = None)``: the end of the call that one ``get()`` picked for.

The channel calls ``put(DoneInfo)`` exactly once for each call that ran on the picked address
(whatever its outcome), and never for a call that did not. For a pick it could not use (the
address's subchannel was gone, the channel closed, the call was cancelled before it started) it
calls ``put.abandon()`` instead, when the put has an ``abandon`` attribute, and nothing otherwise:
so a policy that counts calls in flight (``InFlight``) sees every pick end exactly once. Either may
come from any thread; neither may raise or block.
"""

Down: TypeAlias = Callable[..., None]
"""``down(err: BaseException | None = None)``: the connection that ``up()`` reported is gone."""


class Balancer(ABC):
    """Picks an address for every RPC (legacy grpc-go v1 ``Balancer``).

    The channel drives it: ``start()`` once; ``notify()`` to learn which addresses to connect to;
    ``up(addr)`` when a connection becomes ready, calling the returned ``down`` when it is lost;
    ``get()`` for every RPC, calling the returned ``put`` when the RPC ends; ``close()`` at the end.

    Subclasses set ``name``, the name they are registered under. All methods are thread-safe;
    ``get()`` is called from many threads at once and must not do I/O.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def start(self, target: str, config: BalancerConfig | None = None) -> None:
        """Bootstrap: resolve ``target`` with the resolver and start watching it.

        Raises BalancerClosedError after ``close()``, or the resolver's error.
        """

    @abstractmethod
    def up(self, addr: Address) -> Down | None:
        """The channel has a ready connection to ``addr``.

        Returns ``down``, to call once that connection is lost or closed, or None when ``addr`` was
        already up (the legacy contract).
        """

    @abstractmethod
    def get(
        self,
        *,
        blocking_wait: bool = False,
        timeout: float | None = None,
        info: PickInfo | None = None,
    ) -> tuple[Address, Put | None]:
        """The address for one RPC and an optional ``put`` to call when the RPC ends.

        ``info`` describes the call (its method and metadata); the channel always passes it, legacy
        callers may not. The channel calls ``put(DoneInfo)`` once if the call ran on the address,
        or ``put.abandon()`` (if the put has one) if it did not: never both, never twice (``Put``).

        Fail-fast (``blocking_wait=False``): never blocks; with no address at all it raises
        NoAddressAvailableError; with addresses but none connected it still returns one, and the
        channel decides. Blocking: returns a connected address, waiting for ``up()``; raises
        DeadlineExceededError when ``timeout`` passes and BalancerClosedError when ``close()`` comes.
        """

    @abstractmethod
    def notify(self) -> Notifications | None:
        """The stream of full address lists to connect to (latest wins), or None without a resolver.

        Without a resolver the channel connects to the start target directly.
        """

    @abstractmethod
    def close(self) -> None:
        """Stop the balancer: close the watcher, wake blocked ``get()`` calls, end notifications.

        A second call raises BalancerClosedError.
        """

    @property
    def resolver_error(self) -> BaseException | None:
        """The last error of the resolver while the balancer works around it, else None.

        The channel names it in the details of an UNAVAILABLE call (grpc-go's "last resolver
        error"). PickerBalancer keeps its list and resolves again with backoff meanwhile.
        """
        return None
