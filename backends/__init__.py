"""Backend plugins, one module each: ``static``, ``manual`` (and more in later releases).

Modules here are loaded through the ``naming.backends`` entry points when their scheme is first
used; none is imported with this package, and none imports its registry client before it is needed.
"""

from __future__ import annotations

__all__: list[str] = []
