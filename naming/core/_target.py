"""Targets in the form of the gRPC naming document: ``scheme://authority/endpoint?options``.

``etcd://127.0.0.1:2379,127.0.0.1:22379/hello?prefix=/services`` has scheme ``etcd``, authority
``127.0.0.1:2379,127.0.0.1:22379`` (the registry's own address, may be empty), endpoint ``hello``
(the name being resolved, percent-decoded) and options ``{"prefix": "/services"}``.

A target without ``://`` is read as grpcio reads it: ``scheme:rest`` for gRPC's address schemes
(``ipv4:10.0.0.1:50051,10.0.0.2:50051``, ``ipv6:[::1]:50051``, ``unix:path``,
``unix-abstract:name``, ``dns:host:port``), and otherwise a DNS name: ``localhost:50051`` is
``dns:///localhost:50051``. A unix target keeps its path as written: the endpoint of
``unix:///tmp/sock`` is ``/tmp/sock``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from ..errors import TargetError
from ._types import FrozenMap

__all__ = ["DEFAULT_SCHEME", "OPAQUE_SCHEMES", "Target", "parse_target"]

DEFAULT_SCHEME = "dns"

# gRPC's schemes that grpcio also reads without "//" (scheme:rest, the rest being the endpoint).
OPAQUE_SCHEMES = frozenset({"dns", "ipv4", "ipv6", "unix", "unix-abstract"})
# Schemes whose endpoint is a file system path: "unix:///tmp/sock" names /tmp/sock, as in gRPC.
_PATH_SCHEMES = frozenset({"unix"})
_OPAQUE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(?!//)(.*)", re.DOTALL)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Beyond ASCII, a target as written may not hold whitespace of any kind, C1 controls, format
# characters (zero-width, bidi overrides) or lone surrogates. Once percent-decoded, a part may hold
# spaces (a plain space too) and format characters, but never a control character.
_RAW_BAD = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})
_DECODED_BAD = frozenset({"Cc", "Cs"})


def _first_bad(text: str, ascii_bad: re.Pattern[str], categories: frozenset[str]) -> int | None:
    """The index of the first character of ``text`` a target may not hold, or None."""
    if text.isascii():
        found = ascii_bad.search(text)
        return None if found is None else found.start()
    for index, char in enumerate(text):
        if (char.isascii() and ascii_bad.match(char)) or (
            not char.isascii() and unicodedata.category(char) in categories
        ):
            return index
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target. ``options`` is an immutable mapping of the query string."""

    scheme: str
    authority: str
    endpoint: str
    options: FrozenMap

    def __init__(
        self,
        scheme: str,
        authority: str,
        endpoint: str,
        options: Mapping[str, str] | None = None,
    ) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "authority", authority)
        object.__setattr__(self, "endpoint", endpoint)
        object.__setattr__(self, "options", FrozenMap(options or {}))

    def __str__(self) -> str:
        endpoint = quote(self.endpoint, safe=_ENDPOINT_SAFE)
        if self.scheme in _PATH_SCHEMES and not self.authority:
            # unix:///abs/path, or unix:relative/path: both read back to the same endpoint
            text = (
                f"{self.scheme}://{endpoint}"
                if endpoint.startswith("/")
                else (f"{self.scheme}:{endpoint}")
            )
        else:
            text = f"{self.scheme}://{self.authority}/{endpoint}"
        if self.options:
            pairs = (
                f"{quote(k, safe=_OPTION_SAFE)}={quote(str(v), safe=_OPTION_SAFE)}"
                for k, v in self.options.items()
            )
            text += "?" + "&".join(pairs)
        return text

    @property
    def hosts(self) -> list[str]:
        """The authority split on commas: the registry endpoints to try, in order."""
        return [host for host in self.authority.split(",") if host]


_ENDPOINT_SAFE = "/:,@!$'()*+;=-._~[]"
_OPTION_SAFE = "/:,@!$'()*+;-._~"


def parse_target(text: str) -> Target:
    """Parse a target string; raise TargetError naming the part that is wrong.

    Rules: the scheme is lowercased and must match ``[A-Za-z][A-Za-z0-9+.-]*``; the authority is
    everything up to the next ``/`` and may be empty but may not hold credentials (``@``); the endpoint
    must not be empty; options are ``key=value`` pairs joined by ``&`` (a bare ``key`` means ``""``),
    keys may not repeat; fragments, whitespace (Unicode's too), control and invisible characters
    and lone surrogates are refused.
    """
    if not isinstance(text, str):
        raise TargetError(f"target: expected a string, got {type(text).__name__}")
    if not text:
        raise TargetError("target: empty")
    bad = _first_bad(text, _BAD_CHARS, _RAW_BAD)
    if bad is not None:
        raise TargetError(
            f"target {text!r}: whitespace or control character {text[bad]!r} "
            f"(U+{ord(text[bad]):04X}) at {bad}"
        )
    if "#" in text:
        raise TargetError(f"target {text!r}: fragments ('#') are not allowed")
    if "://" not in text:
        opaque = _OPAQUE.fullmatch(text)
        if opaque is not None and opaque.group(1).lower() in OPAQUE_SCHEMES:
            return _parse_opaque(opaque.group(1).lower(), opaque.group(2), text)
        return _parse_uri(f"{DEFAULT_SCHEME}:///{text}", text)
    return _parse_uri(text, text)


def _parse_opaque(scheme: str, rest: str, original: str) -> Target:
    """``scheme:endpoint[?options]``: gRPC's address schemes written without an authority."""
    raw_endpoint, _, query = rest.partition("?")
    endpoint = _decode(raw_endpoint, "endpoint", original)
    if not endpoint:
        raise TargetError(f"target {original!r}: missing endpoint (the name to resolve)")
    return Target(scheme, "", endpoint, _parse_options(query, original))


def _parse_uri(uri: str, original: str) -> Target:
    scheme, _, rest = uri.partition("://")
    if not _SCHEME.fullmatch(scheme):
        raise TargetError(f"target {original!r}: bad scheme {scheme!r}")
    path, _, query = rest.partition("?")
    authority, slash, raw_endpoint = path.partition("/")
    if not slash:
        raise TargetError(f"target {original!r}: missing '/' between authority and endpoint")
    if "@" in authority:
        raise TargetError(
            f"target {original!r}: credentials do not belong in the authority; "
            "pass them as options to the backend"
        )
    endpoint = _decode(raw_endpoint, "endpoint", original)
    if not endpoint:
        raise TargetError(f"target {original!r}: missing endpoint (the name to resolve)")
    scheme = scheme.lower()
    if scheme in _PATH_SCHEMES:
        if authority:
            raise TargetError(
                f"target {original!r}: a {scheme} target has no authority ({scheme}:///abs/path)"
            )
        endpoint = "/" + endpoint
    return Target(scheme, authority, endpoint, _parse_options(query, original))


def _parse_options(query: str, original: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        key = _decode(raw_key, "option name", original)
        if not key:
            raise TargetError(f"target {original!r}: option {piece!r} has no name")
        if key in options:
            raise TargetError(f"target {original!r}: option {key!r} given twice")
        options[key] = _decode(raw_value, f"option {key!r}", original)
    return options


def _decode(raw: str, part: str, original: str) -> str:
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise TargetError(
            f"target {original!r}: {part} is not valid percent-encoded UTF-8"
        ) from None
    bad = _first_bad(decoded, _CONTROL, _DECODED_BAD)
    if bad is not None:
        raise TargetError(
            f"target {original!r}: {part} decodes to a control character "
            f"(U+{ord(decoded[bad]):04X})"
        )
    return decoded
