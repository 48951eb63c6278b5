"""Backend and Registration: what a backend plugin provides."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..errors import MissingDependencyError, NamingError
from ._closing import Closeable
from ._resolver import AsyncWatcher, Resolver
from ._target import Target
from ._types import Address

__all__ = ["Backend", "Registration"]


class Registration(Closeable, ABC):
    """A server's record in a registry, kept alive until ``close()``.

    ``close()`` removes the record at once and is idempotent. ``pause()`` takes the record out of the
    registry without giving up the registration (clients stop picking the server, e.g. while it
    drains); ``resume()`` puts it back. All three are thread-safe. A registration is a context manager.
    """

    address: Address

    @abstractmethod
    def close(self) -> None:
        """Deregister: the record goes away now. Idempotent."""

    @abstractmethod
    def pause(self) -> None:
        """Remove the record but keep the registration, so that ``resume()`` can restore it."""

    @abstractmethod
    def resume(self) -> None:
        """Put the record back after ``pause()``."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once ``close()`` has been called."""


class Backend(ABC):
    """A registry backend, published by a plugin under one or more URI schemes.

    ``schemes`` lists the URI schemes it serves, canonical first (``("zk", "zookeeper")``).
    ``build()`` makes a Resolver for a target's authority and options; the resolver's ``resolve()``
    is then called with the same target. ``register()`` is for backends that can hold server records;
    the default says that this one cannot. ``aio_resolve()`` may give ``naming.aio.resolve`` a
    native asyncio watcher; by default there is none.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    """The client libraries the backend imports when used: ``(module, what to install)`` pairs,
    e.g. ``(("etcd3", "grpc-naming[etcd]"),)``. :meth:`check_installed` reads them."""

    @abstractmethod
    def build(self, target: Target, **options: Any) -> Resolver:
        """Return a resolver for ``target``. Unknown or bad options raise a clear error."""

    def register(
        self, target: Target, address: Address, *, ttl: float, **options: Any
    ) -> Registration:
        """Publish ``address`` under ``target`` and keep it alive; see :class:`Registration`."""
        raise NamingError(f"{target.scheme}: this backend does not support registration")

    def aio_resolve(self, target: Target, **options: Any) -> AsyncWatcher | None:
        """A native asyncio watcher for ``target`` (:class:`AsyncWatcher`), or None: the default.

        ``naming.aio.resolve`` calls it first, with the options ``build()`` would get; on None it
        runs the sync watcher of ``build()`` in a thread. A backend whose client library is async
        returns its own watcher here; it must not block (no network wait), like ``resolve()``.
        """
        return None

    def missing(self) -> list[str]:
        """One line per library of ``requires`` that cannot be imported, with what to install."""
        lines = []
        for module, extra in self.requires:
            try:
                importlib.import_module(module)
            except Exception as exc:  # missing, or installed but broken: both need the install
                lines.append(
                    f"needs the {module} module ({type(exc).__name__}: {exc}); "
                    f"pip install '{extra}'"
                )
        return lines

    def check_installed(self) -> None:
        """Raise MissingDependencyError naming what to install when a required library is missing.

        The core calls it before ``build()`` and ``register()``, so a missing extra fails at
        ``resolve()``, ``dial()`` and ``register()``, not later in a background thread.
        """
        missing = self.missing()
        if missing:
            scheme = self.schemes[0] if self.schemes else type(self).__name__
            raise MissingDependencyError(f"{scheme}: the backend {'; '.join(missing)}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} schemes={list(self.schemes)}>"
