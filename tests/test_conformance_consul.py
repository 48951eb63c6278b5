"""The conformance suite on the Consul backend, against the Consul double (naming.testing.consul),
and against a real ``consul agent -dev`` as well when a ``consul`` binary is on PATH.

The driver writes through a bare py-consul client of its own, never through the backend: a record
is a check-less agent service (so it passes). An outage stops the double; a partition cuts a
TcpProxy between the backend and the agent while the driver goes on writing. The real agent runs
without the outage capability (a ``-dev`` agent forgets everything when it stops).
"""

from __future__ import annotations

import shutil
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import consul
import pytest

from naming.testing.conformance import BackendConformance, RegistryDriver
from naming.testing.consul import ConsulDouble
from naming.testing.process import ManagedProcess
from naming.testing.proxy import TcpProxy

from ._consul import FAST, bare_client, put_service


class ConsulDriver(RegistryDriver):
    """Services named ``svc`` on a double of their own."""

    capabilities = frozenset({"updates", "register", "outage", "partition"})
    bad_targets = (
        "consul://127.0.0.1:notaport/svc",
        "consul://127.0.0.1:8500/svc?token=secret",  # a secret in the target
        "consul://127.0.0.1:8500,127.0.0.1:8501/svc",  # one agent only
    )

    def __init__(self, double: ConsulDouble) -> None:
        self.double = double
        self.proxy = TcpProxy(double.endpoint)
        self.client = bare_client(double)

    @property
    def resolve_options(self) -> Mapping[str, Any]:
        return FAST

    @property
    def register_options(self) -> Mapping[str, Any]:
        return {"timeout": 2.0}

    def target(self) -> str:
        return f"consul://{self.proxy.endpoint}/svc"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        put_service(self.client, "svc", instance_id, addr)

    def delete(self, instance_id: str) -> None:
        assert self.client.agent.service.deregister(instance_id)

    def outage(self) -> None:
        self.double.stop()

    def restore(self) -> None:
        self.double.start()

    def partition(self) -> None:
        self.proxy.cut()

    def heal(self) -> None:
        self.proxy.heal()

    def close(self) -> None:
        self.proxy.close()
        self.client.http.close()


@pytest.fixture
def naming_registry_driver() -> Iterator[ConsulDriver]:
    with ConsulDouble() as double, ConsulDriver(double) as driver:
        yield driver


class TestConsulConformance(BackendConformance):
    driver_class = ConsulDriver


# -- a real agent, when there is one --------------------------------------------------------------

CONSUL = shutil.which("consul")


def _dev_agent(process: ManagedProcess) -> list[str]:
    http, serf_lan, serf_wan, server = process.ports
    return [
        str(CONSUL),
        "agent",
        "-dev",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        f"-http-port={http}",
        f"-serf-lan-port={serf_lan}",
        f"-serf-wan-port={serf_wan}",
        f"-server-port={server}",
        "-dns-port=-1",
        "-grpc-port=-1",
    ]


def _has_leader(process: ManagedProcess) -> bool:
    try:
        url = f"http://127.0.0.1:{process.port}/v1/status/leader"
        with urllib.request.urlopen(url, timeout=0.5) as reply:
            return len(reply.read().strip()) > 2  # '""' until a leader is elected
    except OSError:
        return False


class AgentDriver(ConsulDriver):
    """Services with a fresh name on a real ``consul agent -dev``."""

    capabilities = frozenset({"updates", "register", "partition"})

    def __init__(self, agent: ManagedProcess) -> None:
        self.service = f"svc{uuid.uuid4().hex[:8]}"
        self.proxy = TcpProxy(f"127.0.0.1:{agent.port}")
        self.client = consul.Consul(host="127.0.0.1", port=agent.port)

    def target(self) -> str:
        return f"consul://{self.proxy.endpoint}/{self.service}"

    def put(self, instance_id: str, addr: str, metadata: Mapping[str, Any] | None = None) -> None:
        put_service(self.client, self.service, f"{self.service}-{instance_id}", addr)

    def delete(self, instance_id: str) -> None:
        self.client.agent.service.deregister(f"{self.service}-{instance_id}")


if CONSUL is not None:

    @pytest.fixture(scope="session")
    def consul_agent() -> Iterator[ManagedProcess]:
        with ManagedProcess(
            _dev_agent, healthy=_has_leader, name="consul", ports=4, component="consul"
        ) as agent:
            yield agent.start()

    @pytest.fixture
    def agent_driver(consul_agent: ManagedProcess) -> Iterator[AgentDriver]:
        with AgentDriver(consul_agent) as driver:
            yield driver

    class TestConsulAgentConformance(BackendConformance):
        driver_class = AgentDriver

        @pytest.fixture
        def naming_registry_driver(self, agent_driver: AgentDriver) -> AgentDriver:
            return agent_driver
