"""The JSON shapes of the Consul double's health answers, as Consul's API docs show them
(``website/content/api-docs/health.mdx``, "List Service Instances for Service")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._consul_state import Check, Service

__all__ = ["check_json", "node_json", "serf_json", "service_json"]


def node_json(node: str, address: str, datacenter: str) -> dict[str, Any]:
    return {
        "ID": "6e5bd5c3-0000-4000-8000-d0ab1e000001",
        "Node": node,
        "Address": address,
        "Datacenter": datacenter,
        "TaggedAddresses": {"lan": address, "wan": address},
        "Meta": {"consul-network-segment": ""},
        "CreateIndex": 1,
        "ModifyIndex": 1,
    }


def service_json(service: Service) -> dict[str, Any]:
    return {
        "ID": service.service_id,
        "Service": service.name,
        "Tags": list(service.tags),
        "Address": service.address,
        "TaggedAddresses": None,
        "Meta": dict(service.meta) if service.meta else None,
        "Port": service.port,
        "Weights": dict(service.weights),
        "EnableTagOverride": False,
        "CreateIndex": service.create_index,
        "ModifyIndex": service.modify_index,
    }


def check_json(node: str, check: Check, service: Service) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": check.check_id,
        "Name": check.name,
        "Status": check.status,
        "Notes": "",
        "Output": check.output,
        "ServiceID": service.service_id,
        "ServiceName": service.name,
        "ServiceTags": list(service.tags),
        "Type": check.kind,
        "CreateIndex": check.create_index,
        "ModifyIndex": check.modify_index,
    }


def serf_json(node: str) -> dict[str, Any]:
    return {
        "Node": node,
        "CheckID": "serfHealth",
        "Name": "Serf Health Status",
        "Status": "passing",
        "Notes": "",
        "Output": "Agent alive and reachable",
        "ServiceID": "",
        "ServiceName": "",
        "ServiceTags": [],
        "Type": "",
        "CreateIndex": 1,
        "ModifyIndex": 1,
    }
