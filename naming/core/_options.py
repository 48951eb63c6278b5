"""Backend options: the target's query merged with keyword options and checked in one place.

Every registry backend takes options two ways, ``etcd:///hello?prefix=/svc`` and
``naming.resolve("etcd:///hello", prefix="/svc")``; ``merge_options`` gives them one meaning:

* keyword options win over the target's query;
* an option outside ``allowed`` is a TypeError that names it and lists the allowed ones;
* a secret (a password, a token) in the target is a TargetError: targets end up in logs and reprs;
* ``kinds`` converts and checks values: the query gives strings, keywords give anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ..errors import TargetError
from ._target import Target

__all__ = ["OptionKind", "merge_options"]

OptionKind = type | Callable[[Any], Any]
"""How ``merge_options`` checks one option: ``str`` (a string, as it is), ``float`` (a positive
finite number, such as seconds), ``int`` (a positive whole number), ``bool`` (``True``/``False`` or
``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``, any case; a bare ``?name`` in the
target means true), or any callable that returns the converted value and raises ValueError or
TypeError saying what is wrong."""

_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_HIDDEN = "<hidden>"


def merge_options(
    component: str,
    target: Target,
    options: Mapping[str, Any],
    allowed: Collection[str],
    *,
    secrets: Collection[str] = (),
    kinds: Mapping[str, OptionKind] | None = None,
) -> dict[str, Any]:
    """The target's options updated with ``options``, every one checked; a new dict.

    Raises TargetError when a name in ``secrets`` is in the target's query, TypeError naming the
    unknown options and the allowed ones, and for a value its kind refuses TypeError (a keyword of
    the wrong type for ``str``) or ValueError; every message starts with ``component`` and names
    the option, never a secret's value. ``None`` means "not given": it is kept and never converted.
    """
    for name in secrets:
        if name in target.options:
            raise TargetError(f"{component}: pass {name} as a keyword option, never in the target")
    merged: dict[str, Any] = {**target.options, **options}
    unknown = sorted(set(merged) - set(allowed))
    if unknown:
        raise TypeError(f"{component}: unknown options {unknown}; allowed: {sorted(allowed)}")
    for name, kind in (kinds or {}).items():
        value = merged.get(name)
        if value is not None:
            shown = _HIDDEN if name in secrets else repr(value)
            merged[name] = _convert(component, name, kind, value, shown)
    return merged


def _convert(component: str, name: str, kind: OptionKind, value: Any, shown: str) -> Any:
    if kind is str:
        if not isinstance(value, str):
            raise TypeError(
                f"{component}: option {name!r} must be a string, got {type(value).__name__}"
            )
        return value
    if kind is float:
        return _positive(component, name, value, shown, float, "a number")
    if kind is int:
        return _positive(component, name, value, shown, int, "a whole number")
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = value.strip().lower() if isinstance(value, str) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{component}: {name} must be true or false, got {shown}")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{component}: {name}: {exc}") from None


def _positive(
    component: str, name: str, value: Any, shown: str, number: type, what: str
) -> float | int:
    converted: float | int
    try:
        if isinstance(value, bool) or (number is int and isinstance(value, float)):
            raise ValueError
        converted = number(value)
    except (TypeError, ValueError):
        raise ValueError(f"{component}: {name} must be {what}, got {shown}") from None
    if not math.isfinite(converted) or converted <= 0:
        raise ValueError(f"{component}: {name} must be positive, got {shown}")
    return converted
