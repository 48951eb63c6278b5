"""The plugin manager: finds backends and balancers through entry points, lazily and once.

Only the entry point that a scheme or balancer name asks for is loaded. Built-ins are declared in
grpc-naming's own pyproject under the same groups, so they load through the same door.

Environment:

* ``NAMING_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points (grpc-naming's own built-ins
  still load); plugins can still be added with :func:`naming.add_plugin`.
* ``NAMING_DISABLED_PLUGINS=a,b``: never load the entry points named ``a`` or ``b``.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import logging
import os
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn, Protocol, runtime_checkable

import pluggy

from .. import hookspecs
from ..errors import PluginError, UnknownBalancerError, UnknownSchemeError
from ._backend import Backend

__all__ = [
    "BACKENDS_GROUP",
    "BALANCERS_GROUP",
    "BALANCER_METHODS",
    "BalancerLike",
    "PluginInfo",
    "PluginRegistry",
    "hookimpl",
    "is_balancer_class",
    "registry",
    "set_registry",
]

log = logging.getLogger("naming.plugins")

hookimpl = pluggy.HookimplMarker("naming")

BACKENDS_GROUP = "naming.backends"
BALANCERS_GROUP = "naming.balancers"
OWN_DISTRIBUTION = "grpc-naming"

EntryPoints = Callable[[str], Iterable[metadata.EntryPoint]]

BALANCER_METHODS = ("start", "up", "get", "notify", "close")


@runtime_checkable
class BalancerLike(Protocol):
    """What the core needs of a balancer: the legacy v1 shape. ``balancers.Balancer`` is one.

    The core types balancers with this Protocol, so that it never imports the ``balancers`` package.
    """

    name: ClassVar[str]

    def start(self, target: str, config: Any = None) -> None: ...

    def up(self, addr: Any) -> Any: ...

    def get(self, *, blocking_wait: bool = False, timeout: float | None = None) -> Any: ...

    def notify(self) -> Any: ...

    def close(self) -> None: ...


def is_balancer_class(cls: object) -> bool:
    """True when ``cls`` is a class whose instances have the balancer methods."""
    return isinstance(cls, type) and all(
        callable(getattr(cls, method, None)) for method in BALANCER_METHODS
    )


def _installed_entry_points(group: str) -> Iterable[metadata.EntryPoint]:
    return metadata.entry_points(group=group)


@dataclass(frozen=True)
class PluginInfo:
    """What ``available_*`` and the CLI report about one installed name."""

    name: str
    group: str
    value: str
    distribution: str
    version: str


def _dist_of(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    dist = entry_point.dist
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"] or "?", dist.version or "?"


HOOK_NAMES = ("naming_register_backends", "naming_register_balancers")
_ROOT = Path(__file__).resolve().parents[2]  # where grpc-naming's top-level packages are installed


def _check_hooks(plugin: object) -> None:
    """TypeError unless ``plugin`` has at least one of our hooks marked with ``naming.hookimpl``."""
    try:
        hooks = [getattr(plugin, hook, None) for hook in HOOK_NAMES]
        marked = [h for h in hooks if callable(h) and getattr(h, "naming_impl", None) is not None]
    except Exception as exc:
        raise TypeError(
            f"naming: add_plugin: reading the hooks of {plugin!r} failed: {type(exc).__name__}"
        ) from exc
    if not marked:
        raise TypeError(
            f"naming: add_plugin: {plugin!r} is not a plugin: it has no function marked "
            f"@naming.hookimpl named {' or '.join(HOOK_NAMES)}"
        )


def _module_of(plugin: object) -> str:
    """The module a plugin object comes from (a module's own name for a module)."""
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return str(getattr(plugin, "__module__", None) or type(plugin).__module__)


def _shadowing(module: str) -> str | None:
    """Why grpc-naming's own ``module`` would not be ours: a package of the same top-level name
    (``backends``, ``balancers``) earlier on sys.path; None when ours is the one found."""
    top = module.split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin:
        where = Path(spec.origin).resolve().parent
    elif spec.submodule_search_locations:
        where = Path(next(iter(spec.submodule_search_locations))).resolve()
    else:
        return None
    if where.parent == _ROOT:
        return None
    return (
        f"a package {top!r} at {where} shadows grpc-naming's own {top!r} (in {_ROOT}); "
        "rename yours or move it off sys.path"
    )


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class PluginRegistry:
    """Holds the pluggy manager and the backends and balancers that plugins registered.

    Thread-safe. Tests build their own instance and install it with :func:`set_registry`.
    """

    def __init__(
        self,
        *,
        autoload: bool = True,
        disabled: Iterable[str] = (),
        entry_points: EntryPoints = _installed_entry_points,
    ) -> None:
        self._pm = pluggy.PluginManager("naming")
        self._pm.add_hookspecs(hookspecs)
        self._autoload = autoload
        self._disabled = frozenset(disabled)
        self._entry_points = entry_points
        self._lock = threading.RLock()
        self._backends: dict[str, tuple[Backend, str]] = {}
        self._balancers: dict[str, tuple[type[BalancerLike], str]] = {}
        self._attempted: set[tuple[str, str]] = set()
        self._failed: dict[tuple[str, str], PluginError] = {}

    @classmethod
    def from_environment(cls) -> PluginRegistry:
        autoload = os.environ.get("NAMING_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes")
        raw = os.environ.get("NAMING_DISABLED_PLUGINS", "")
        return cls(autoload=autoload, disabled=[n.strip() for n in raw.split(",") if n.strip()])

    # -- lookups -------------------------------------------------------------------------------

    def backend(self, scheme: str) -> Backend:
        """The backend for ``scheme``, loading its entry point on first use."""
        with self._lock:
            if scheme not in self._backends:
                self._load(BACKENDS_GROUP, scheme)
            if scheme in self._backends:
                return self._backends[scheme][0]
        installed = ", ".join(self.names(BACKENDS_GROUP)) or "none"
        raise UnknownSchemeError(
            f"naming: no backend for scheme {scheme!r}; installed: {installed}"
            + self._hidden(BACKENDS_GROUP, scheme)
        )

    def balancer(self, name: str) -> type[BalancerLike]:
        """The balancer class registered as ``name``, loading its entry point on first use."""
        with self._lock:
            if name not in self._balancers:
                self._load(BALANCERS_GROUP, name)
            if name in self._balancers:
                return self._balancers[name][0]
        installed = ", ".join(self.names(BALANCERS_GROUP)) or "none"
        raise UnknownBalancerError(
            f"naming: no balancer named {name!r}; installed: {installed}"
            + self._hidden(BALANCERS_GROUP, name)
        )

    def _hidden(self, group: str, name: str) -> str:
        """Why an installed entry point named ``name`` was not used, if one was hidden; else ""."""
        for ep in self._entry_points(group):
            if ep.name != name:
                continue
            dist = " ".join(_dist_of(ep))
            if name in self._disabled:
                return (
                    f" ({ep.value} from {dist} is installed but NAMING_DISABLED_PLUGINS hides it)"
                )
            if not self._autoload and _normalise(_dist_of(ep)[0]) != OWN_DISTRIBUTION:
                return (
                    f" ({ep.value} from {dist} is installed but NAMING_DISABLE_PLUGIN_AUTOLOAD=1 "
                    "hides third-party plugins)"
                )
        return ""

    def names(self, group: str) -> list[str]:
        """Every name in ``group``: the ones already registered and the loadable entry points."""
        registered = self._backends if group == BACKENDS_GROUP else self._balancers
        with self._lock:
            known = set(registered)
        known.update(ep.name for ep in self._allowed(group))
        return sorted(known)

    def describe(self, group: str) -> list[PluginInfo]:
        """One PluginInfo per allowed entry point of ``group``, without loading anything."""
        infos = []
        for ep in self._allowed(group):
            dist, version = _dist_of(ep)
            infos.append(PluginInfo(ep.name, group, ep.value, dist, version))
        return sorted(infos, key=lambda info: info.name)

    # -- registering ---------------------------------------------------------------------------

    def add_plugin(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object (module, class or instance with hookimpls) and run its hooks.

        TypeError when ``plugin`` has no ``@naming.hookimpl`` of ours or ``name`` is not a str;
        PluginError when its hooks fail or claim a taken name. Either way nothing is registered and
        the registry keeps working.
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(f"naming: add_plugin: name must be a str, got {type(name).__name__}")
        _check_hooks(plugin)
        with self._lock:
            self._register(plugin, name or f"added:{getattr(plugin, '__name__', repr(plugin))}")

    def _allowed(self, group: str) -> list[metadata.EntryPoint]:
        allowed = []
        for ep in self._entry_points(group):
            if ep.name in self._disabled:
                continue
            if not self._autoload and _normalise(_dist_of(ep)[0]) != OWN_DISTRIBUTION:
                continue
            allowed.append(ep)
        return allowed

    def _load(self, group: str, name: str) -> None:
        key = (group, name)
        if key in self._failed:
            raise self._failed[key]
        if key in self._attempted:
            return
        candidates = [ep for ep in self._allowed(group) if ep.name == name]
        if not candidates:
            return
        if len(candidates) > 1:
            dists = ", ".join(sorted({" ".join(_dist_of(ep)) for ep in candidates}))
            self._fail(
                key, f"naming: {group} entry point {name!r} is declared more than once: {dists}"
            )
        entry_point = candidates[0]
        dist, version = _dist_of(entry_point)
        label = f"plugin {name!r} ({entry_point.value}) from distribution {dist} {version}"
        self._attempted.add(key)
        shadowed = _shadowing(entry_point.module) if _normalise(dist) == OWN_DISTRIBUTION else None
        if shadowed:
            self._fail(key, f"naming: {label} cannot be imported: {shadowed}")
        try:
            plugin = entry_point.load()
        except Exception as exc:
            self._fail(key, f"naming: {label} failed to import: {type(exc).__name__}: {exc}", exc)
        try:
            self._register(plugin, f"{group}:{name}")
        except PluginError as exc:
            self._fail(key, f"naming: {label}: {exc}", exc)

    def _fail(
        self, key: tuple[str, str], message: str, cause: BaseException | None = None
    ) -> NoReturn:
        error = PluginError(message)
        self._failed[key] = error
        log.error("%s", message)
        raise error from cause

    def _register(self, plugin: object, name: str) -> None:
        if self._pm.is_registered(plugin):
            return  # one module serving several entry names (an alias) is loaded once
        try:
            self._pm.register(plugin, name)
            self._pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginError(f"plugin {name!r} is not valid: {exc}") from exc
        others = [p for p in self._pm.get_plugins() if p is not plugin]
        backends: list[Backend] = []
        balancers: list[type[Any]] = []
        try:
            self._pm.subset_hook_caller("naming_register_backends", others)(
                register=backends.append
            )
            self._pm.subset_hook_caller("naming_register_balancers", others)(
                register=balancers.append
            )
            module = _module_of(plugin)
            new_backends = self._checked_backends(backends, name, module)
            new_balancers = self._checked_balancers(balancers, name, module)
        except PluginError:
            self._pm.unregister(plugin)
            raise
        except Exception as exc:
            self._pm.unregister(plugin)
            raise PluginError(
                f"plugin {name!r} failed in its hook: {type(exc).__name__}: {exc}"
            ) from exc
        self._backends.update(new_backends)
        self._balancers.update(new_balancers)

    def _checked_backends(
        self, backends: list[Backend], owner: str, module: str
    ) -> dict[str, tuple[Backend, str]]:
        new: dict[str, tuple[Backend, str]] = {}
        for backend in backends:
            if not isinstance(backend, Backend):
                raise PluginError(
                    f"plugin {owner!r} registered {backend!r}, which is not a naming.Backend"
                )
            if not backend.schemes:
                raise PluginError(f"plugin {owner!r} registered {backend!r} with no schemes")
            for scheme in backend.schemes:
                self._check_free(scheme, BACKENDS_GROUP, new, self._backends, owner, module)
                new[scheme] = (backend, owner)
        return new

    def _checked_balancers(
        self, classes: list[type[Any]], owner: str, module: str
    ) -> dict[str, tuple[type[Any], str]]:
        new: dict[str, tuple[type[Any], str]] = {}
        for cls in classes:
            if not is_balancer_class(cls):
                raise PluginError(
                    f"plugin {owner!r} registered {cls!r}, which is not a balancer class "
                    f"(a balancers.Balancer subclass, or a class with {', '.join(BALANCER_METHODS)})"
                )
            name = getattr(cls, "name", "")
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin {owner!r} registered {cls.__name__} without a name")
            self._check_free(name, BALANCERS_GROUP, new, self._balancers, owner, module)
            new[name] = (cls, owner)
        return new

    def _check_free(
        self,
        name: str,
        group: str,
        new: dict[str, Any],
        existing: dict[str, Any],
        owner: str,
        module: str,
    ) -> None:
        """PluginError if ``name`` is taken: registered already, or declared by the entry point of
        another module that is not loaded yet (so the outcome never depends on the load order)."""
        kind = "scheme" if group == BACKENDS_GROUP else "balancer"
        holder = existing.get(name, new.get(name))
        if holder is not None:
            raise PluginError(
                f"{kind} {name!r} registered by plugin {owner!r} is already registered "
                f"by plugin {holder[1]!r}"
            )
        for ep in self._allowed(group):
            if ep.name == name and ep.module != module:
                dist, version = _dist_of(ep)
                raise PluginError(
                    f"{kind} {name!r} registered by plugin {owner!r} is declared by the entry "
                    f"point {ep.value!r} of distribution {dist} {version}"
                )


_registry: PluginRegistry | None = None
_registry_lock = threading.Lock()


def registry() -> PluginRegistry:
    """The process-wide registry, built from the environment on first use."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = PluginRegistry.from_environment()
        return _registry


def set_registry(new: PluginRegistry | None) -> PluginRegistry | None:
    """Install ``new`` as the process-wide registry (None: rebuild on next use); return the old one."""
    global _registry
    with _registry_lock:
        old, _registry = _registry, new
        return old
