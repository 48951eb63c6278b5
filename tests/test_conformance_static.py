"""The conformance suite on the static backend: a fixed list, so no updates, outages or records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from naming.testing.conformance import BackendConformance, RegistryDriver


class StaticDriver(RegistryDriver):
    """Keeps the records itself; ``target()`` writes them into a ``static:///`` list."""

    bad_targets = (
        "static://somehost/127.0.0.1:1",  # the authority must be empty
        "static:///127.0.0.1:99999",  # no such port
        "static:///127.0.0.1",  # no port at all
        "static:///127.0.0.1:1?zone=z1",  # static takes no options
        "static:///127.0.0.1:1,,127.0.0.1:2",  # an empty entry
    )

    def __init__(self) -> None:
        self._records: dict[str, str] = {}

    def target(self) -> str:
        if not self._records:
            raise ValueError("static: an empty list has no target")
        return "static:///" + ",".join(self._records.values())

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        if metadata is not None:
            raise ValueError("static: records have no metadata")
        self._records[instance_id] = addr

    def delete(self, instance_id: str) -> None:
        del self._records[instance_id]


@pytest.fixture
def naming_registry_driver() -> Iterator[StaticDriver]:
    with StaticDriver() as driver:
        yield driver


class TestStaticConformance(BackendConformance):
    driver_class = StaticDriver
