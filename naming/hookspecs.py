"""The plugin hooks of grpc-naming (pluggy project name ``"naming"``).

A plugin is a module (or any object) with functions marked ``@naming.hookimpl``, declared under the
entry-point group ``naming.backends`` (entry name = URI scheme) or ``naming.balancers`` (entry name =
balancer name). Each hook receives a ``register`` callable; the body of a plugin is one call to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .core import Backend

__all__ = ["hookspec", "naming_register_backends", "naming_register_balancers"]

hookspec = pluggy.HookspecMarker("naming")


@hookspec
def naming_register_backends(register: Callable[[Backend], None]) -> None:
    """Register backends: call ``register(backend)`` with a :class:`naming.Backend` instance.

    The backend serves every scheme in its ``schemes``. A scheme registered twice raises
    :class:`naming.PluginError` and the second plugin is not loaded.

    Example::

        @naming.hookimpl
        def naming_register_backends(register):
            register(MyRegistryBackend())
    """


@hookspec
def naming_register_balancers(register: Callable[[type[Any]], None]) -> None:
    """Register balancers: call ``register(cls)`` with a :class:`balancers.Balancer` subclass.

    The class's ``name`` is the balancer name users pass to ``balancers.create()`` and
    ``naming.dial(balancer=...)``; it is built as ``cls(resolver=..., **options)``. A name registered
    twice raises :class:`naming.PluginError` and the second plugin is not loaded.

    Example::

        @naming.hookimpl
        def naming_register_balancers(register):
            register(LeastLoaded)
    """
