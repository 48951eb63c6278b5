"""Closeable: ``with`` support for everything that has a ``close()``."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["Closeable"]

_C = TypeVar("_C", bound="Closeable")


class Closeable:
    """A ``with`` block closes the object at its end, whatever happened inside."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
