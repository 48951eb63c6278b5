"""Consul double fixtures and a bare py-consul writer, for the Consul backend's tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import consul
import pytest

from naming.testing.consul import ConsulDouble

FAST = {"wait": 1.0, "timeout": 2.0}  # short blocking waits, so faults show within a test


@pytest.fixture
def consul_double() -> Iterator[ConsulDouble]:
    """A fresh double of a Consul agent (ACLs off), closed after the test."""
    with ConsulDouble() as double:
        yield double


def bare_client(double: ConsulDouble, token: str | None = None) -> Any:
    """A plain py-consul client of the double: the path of writes that is not the backend's."""
    return consul.Consul(host="127.0.0.1", port=double.port, token=token)


def put_service(
    client: Any,
    service: str,
    instance_id: str,
    addr: str,
    *,
    meta: Mapping[str, str] | None = None,
    tags: list[str] | None = None,
    weight: int | None = None,
    address: str | None = None,
) -> None:
    """Register a check-less (so passing) service ``instance_id`` of ``service`` at ``addr``."""
    host, _, port = addr.rpartition(":")
    assert client.agent.service.register(
        service,
        service_id=instance_id,
        address=host if address is None else address,
        port=int(port),
        tags=tags,
        meta=dict(meta) if meta else None,
        weights={"Passing": weight, "Warning": 1} if weight else None,
    )
