"""RegistryDriver: what a backend's tests give the conformance suite (:mod:`.conformance`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from naming.core import Closeable

__all__ = ["CAPABILITIES", "RegistryDriver"]

CAPABILITIES: Mapping[str, str] = {
    "updates": "records put or deleted after resolve() reach the open watcher",
    "metadata": "a record carries metadata (put(..., metadata=...))",
    "raw": "put_raw() stores a value the backend must skip (foreign or garbage)",
    "register": "naming.register() publishes records in the registry",
    "outage": "outage() makes the registry unreachable, restore() brings it back",
    "partition": "partition() cuts the backend off while put/delete/compact still work; heal()",
    "compact": "compact() makes the registry forget its history of changes",
}
"""Every capability a driver may declare, with what it promises."""

# the methods a capability needs the driver to override
_METHODS = {
    "raw": ("put_raw",),
    "outage": ("outage", "restore"),
    "partition": ("partition", "heal"),
    "compact": ("compact",),
}

GARBAGE: tuple[bytes, ...] = (
    b"\xff\xfe not utf-8",
    b"",
    b"{not json",
    b"[1, 2, 3]",
    b'{"neither": "addr nor anything known"}',
    b"no-port-here",
)


class RegistryDriver(Closeable, ABC):
    """Writes records for one test's service through a path of its own, not the backend under test.

    A driver owns a fresh service (a fresh key prefix, chroot or name) for the test that made it.
    ``capabilities`` (a subset of :data:`CAPABILITIES`) says what else it can do; a check that needs
    a capability the driver lacks is not collected. Declaring ``raw``, ``outage``, ``partition`` or
    ``compact`` requires overriding ``put_raw``, ``outage``/``restore``, ``partition``/``heal`` or
    ``compact`` (TypeError otherwise). An outage takes the registry away for everyone (a stopped
    server); a partition only for the backend under test (a cut proxy: :mod:`.proxy`), so that the
    driver can change records while the backend cannot see them.

    ``target()`` is called after the records of the first snapshot were put: a driver without
    ``updates`` may build the target from them (a static list does). ``bad_targets`` are targets of
    this backend that ``naming.resolve`` must refuse with TargetError. ``resolve_options`` and
    ``register_options`` go to every ``naming.resolve`` and ``naming.register`` call of the suite.
    ``close()`` releases what the driver holds; the fixture that made the driver calls it.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()
    bad_targets: ClassVar[tuple[str, ...]] = ()
    garbage: ClassVar[tuple[bytes, ...]] = GARBAGE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = sorted(set(cls.capabilities) - set(CAPABILITIES))
        if unknown:
            raise TypeError(
                f"conformance: {cls.__name__} declares unknown capabilities {unknown}; "
                f"known: {sorted(CAPABILITIES)}"
            )
        for capability in sorted(cls.capabilities):
            for name in _METHODS.get(capability, ()):
                if getattr(cls, name) is getattr(RegistryDriver, name):
                    raise TypeError(
                        f"conformance: {cls.__name__} declares {capability!r} "
                        f"but does not override {name}()"
                    )

    @property
    def resolve_options(self) -> Mapping[str, Any]:
        return {}

    @property
    def register_options(self) -> Mapping[str, Any]:
        return {}

    @abstractmethod
    def target(self) -> str:
        """The target that resolves this test's service."""

    @abstractmethod
    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        """Create or replace the record of ``instance_id``; return once the registry holds it."""

    @abstractmethod
    def delete(self, instance_id: str) -> None:
        """Remove the record of ``instance_id``; return once the registry no longer holds it."""

    def put_raw(self, instance_id: str, value: bytes) -> None:
        """Store ``value`` as the record of ``instance_id``, as some other program might (``raw``)."""
        raise NotImplementedError

    def outage(self) -> None:
        """Make the registry unreachable for the backend under test (``outage``)."""
        raise NotImplementedError

    def restore(self) -> None:
        """End the outage; return once ``put`` and ``delete`` work again (``outage``)."""
        raise NotImplementedError

    def partition(self) -> None:
        """Cut the backend under test off; ``put``, ``delete`` and ``compact`` go on working."""
        raise NotImplementedError

    def heal(self) -> None:
        """End the partition (``partition``)."""
        raise NotImplementedError

    def compact(self) -> None:
        """Drop the registry's history up to now (``compact``)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the driver holds. Idempotent; a ``with`` block calls it."""
