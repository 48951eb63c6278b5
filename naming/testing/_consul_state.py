"""The state behind the Consul double (:mod:`naming.testing.consul`): one agent, one node, one dc.

Pure data and rules, no HTTP: services and their checks, the Raft-like index, TTL expiry, the
critical-service reaper, ACL tokens and the health query. Every rule cites where Consul has it in
docs/testing-consul-double.md. Thread-safe: every method takes the one condition's lock, and every
write that changes what a query sees moves the index and wakes the blocked queries.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ._consul_shapes import check_json, node_json, serf_json, service_json

__all__ = ["ApiError", "ConsulState", "parse_duration"]

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")

# register fields Consul's decoder knows (lower case, no underscores: it matches them that way)
_SERVICE_FIELDS = frozenset(
    [
        "id",
        "name",
        "tags",
        "address",
        "port",
        "meta",
        "weights",
        "check",
        "checks",
        "enabletagoverride",
        "taggedaddresses",
        "kind",
        "proxy",
        "connect",
        "namespace",
        "partition",
        "socketpath",
        "locality",
    ]
)
_CHECK_FIELDS = frozenset(
    [
        "checkid",
        "id",
        "name",
        "notes",
        "status",
        "ttl",
        "deregistercriticalserviceafter",
        "interval",
        "timeout",
        "http",
        "tcp",
        "grpc",
        "grpcusetls",
        "args",
        "script",
        "header",
        "method",
        "body",
        "tlsskipverify",
        "tlsservername",
        "successbeforepassing",
        "failuresbeforewarning",
        "failuresbeforecritical",
        "serviceid",
    ]
)


class ApiError(Exception):
    """An HTTP error answer: ``status`` and the plain-text body Consul sends."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def parse_duration(value: Any, what: str) -> float:
    """Seconds from a Go duration (``"10s"``, ``"1m30s"``); a JSON number is nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1e9
    text = str(value).strip()
    if text in ("", "0"):
        return 0.0
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        if re.fullmatch(r"\d+(\.\d*)?", text):
            raise ApiError(
                400, f'Request decode failed: {what}: time: missing unit in duration "{text}"'
            )
        raise ApiError(400, f'Request decode failed: {what}: time: invalid duration "{text}"')
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _normalised(body: dict[str, Any], known: frozenset[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = key.replace("_", "").lower()
        if name not in known:
            raise ApiError(400, f'Request decode failed: json: unknown field "{key}" in {what}')
        out[name] = value
    return out


@dataclass
class Check:
    check_id: str
    name: str
    service_id: str
    status: str
    ttl: float | None
    deregister_after: float | None
    kind: str
    grpc: str | None = None
    interval: float = 10.0
    next_probe: float = 0.0
    output: str = ""
    deadline: float | None = None  # when the TTL runs out
    critical_since: float | None = None
    create_index: int = 0
    modify_index: int = 0


@dataclass
class Service:
    service_id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str] | None
    weights: dict[str, int]
    checks: list[str] = field(default_factory=list)
    create_index: int = 0
    modify_index: int = 0


class ConsulState:
    """One agent's services and checks. ``acl`` maps tokens to ``"write"`` or ``"read"``; None
    turns ACLs off. The clock is ``time.monotonic``."""

    def __init__(
        self, *, node: str, node_address: str, datacenter: str, acl: dict[str, str] | None
    ) -> None:
        self.node = node
        self.node_address = node_address
        self.datacenter = datacenter
        self.acl = acl
        self.cond = threading.Condition()
        self.index = 1
        self.services: dict[str, Service] = {}
        self.checks: dict[str, Check] = {}
        self._name_index: dict[str, int] = {}  # the index of the last change to each service name

    # -- indexes -------------------------------------------------------------------------------

    def _bump(self, *names: str) -> None:
        self.index += 1
        for name in names:
            self._name_index[name] = self.index
        self.cond.notify_all()

    def service_index(self, name: str) -> int:
        """The X-Consul-Index of ``/v1/health/service/<name>``: never 0."""
        return max(self._name_index.get(name, self.index), 1)

    def reset_index(self, to: int = 1) -> None:
        """The index goes back (a restored or rebuilt cluster), the state is kept."""
        with self.cond:
            self.index = to
            self._name_index = dict.fromkeys(self._name_index, to)
            self.cond.notify_all()

    # -- ACLs ----------------------------------------------------------------------------------

    def authorize(self, token: str | None, write: bool, service: str) -> bool:
        """False for a read to filter; raises 403 for a refused write or an unknown token."""
        if self.acl is None:
            return True
        if token:
            rights = self.acl.get(token)
            if rights is None:
                raise ApiError(403, "ACL not found")
        else:
            rights = None  # the anonymous token: default deny
        if write and rights != "write":
            accessor = "00000000-0000-0000-0000-000000000002" if rights is None else "double"
            raise ApiError(
                403,
                f"Permission denied: token with AccessorID '{accessor}' lacks permission "
                f"'service:write' on \"{service}\"",
            )
        return rights is not None

    # -- writes --------------------------------------------------------------------------------

    def register(self, body: Any, token: str | None) -> None:
        if not isinstance(body, dict):
            raise ApiError(400, "Request decode failed: expected a JSON object")
        spec = _normalised(body, _SERVICE_FIELDS, "service definition")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "Invalid Service: Missing service name")
        self.authorize(token, True, name)
        meta = spec.get("meta")
        if meta is not None:
            for key, value in dict(meta).items():
                if not _META_KEY.match(key):
                    raise ApiError(
                        400, f"Invalid Service Meta: Key contains invalid characters: {key}"
                    )
                if not isinstance(value, str):
                    raise ApiError(400, "Request decode failed: json: cannot unmarshal into Meta")
        weights = {"Passing": 1, "Warning": 1}
        for key, value in dict(spec.get("weights") or {}).items():
            weights[key.capitalize()] = int(value)
        checks = [spec["check"]] if spec.get("check") else []
        checks += list(spec.get("checks") or [])
        service_id = spec.get("id") or name
        parsed = [self._check_spec(service_id, c, n, len(checks)) for n, c in enumerate(checks)]
        with self.cond:
            old = self.services.get(service_id)
            service = Service(
                service_id,
                name,
                list(spec.get("tags") or []),
                str(spec.get("address") or ""),
                int(spec.get("port") or 0),
                dict(meta) if meta else None,
                weights,
            )
            service.create_index = old.create_index if old else self.index + 1
            now = time.monotonic()
            for check in parsed:
                existing = self.checks.get(check.check_id)
                if existing is not None:  # a re-registration keeps the check's status
                    check.status, check.output = existing.status, existing.output
                    check.deadline, check.critical_since = (
                        existing.deadline,
                        existing.critical_since,
                    )
                    check.create_index = existing.create_index
                    check.modify_index = existing.modify_index
                else:
                    check.create_index = self.index + 1
                    if check.ttl:
                        check.deadline = now + check.ttl
                    if check.status == "critical":
                        check.critical_since = now
                service.checks.append(check.check_id)
            for stale in old.checks if old else []:
                if stale not in service.checks:
                    self.checks.pop(stale, None)
            same = old is not None and _same(old, service, self.checks, parsed)
            for check in parsed:
                self.checks[check.check_id] = check
            if same and old is not None:
                service.modify_index = old.modify_index
                self.services[service_id] = service
                return
            self.services[service_id] = service
            self._bump(name, *([old.name] if old and old.name != name else []))
            service.modify_index = self.index
            for check in parsed:
                check.modify_index = self.index

    def _check_spec(self, service_id: str, raw: Any, number: int, count: int) -> Check:
        spec = _normalised(dict(raw), _CHECK_FIELDS, "check definition")
        check_id = spec.get("checkid") or spec.get("id")
        if not check_id:
            check_id = f"service:{service_id}" + (f":{number + 1}" if count > 1 else "")
        ttl = parse_duration(spec["ttl"], "TTL") if spec.get("ttl") else None
        after = spec.get("deregistercriticalserviceafter")
        deregister = parse_duration(after, "DeregisterCriticalServiceAfter") if after else None
        kind = "ttl" if ttl else "grpc" if spec.get("grpc") else "unknown"
        if kind == "unknown":
            raise ApiError(400, "Invalid check: TTL or gRPC must be set (the double models these)")
        status = str(spec.get("status") or "critical")
        name = spec.get("name") or f"Service '{service_id}' check"
        interval = parse_duration(spec.get("interval") or "10s", "Interval")
        return Check(
            check_id, name, service_id, status, ttl, deregister, kind, spec.get("grpc"), interval
        )

    def deregister(self, service_id: str, token: str | None) -> None:
        with self.cond:
            service = self.services.get(service_id)
            if service is None:
                raise ApiError(
                    404,
                    f'Unknown service ID "{service_id}". Ensure that the service ID is passed, '
                    "not the service name.",
                )
            self.authorize(token, True, service.name)
            self._remove(service)

    def _remove(self, service: Service) -> None:
        del self.services[service.service_id]
        for check_id in service.checks:
            self.checks.pop(check_id, None)
        self._bump(service.name)

    def update_check(self, check_id: str, status: str, output: str, token: str | None) -> None:
        with self.cond:
            check = self.checks.get(check_id)
            if check is None:
                raise ApiError(
                    404,
                    f'Unknown check ID "{check_id}". Ensure that the check ID is passed, '
                    "not the check name.",
                )
            service = self.services[check.service_id]
            self.authorize(token, True, service.name)
            if check.kind != "ttl":
                raise ApiError(500, f'CheckID "{check_id}" does not have associated TTL')
            check.deadline = time.monotonic() + (check.ttl or 0)
            self._set_status(check, service, status, output)

    def _set_status(self, check: Check, service: Service, status: str, output: str) -> None:
        if status == check.status and output == check.output:
            return  # nothing to write: the index does not move
        if status == "critical" and check.status != "critical":
            check.critical_since = time.monotonic()
        elif status != "critical":
            check.critical_since = None
        check.status, check.output = status, output
        self._bump(service.name)
        check.modify_index = self.index

    def forget_all(self) -> None:
        """An agent restart: every service registered through the API is gone."""
        with self.cond:
            for service in list(self.services.values()):
                self._remove(service)

    def tick(self, probe: Any = None) -> None:
        """TTL expiry, gRPC probes (``probe(target) -> bool``) and the critical-service reaper."""
        now = time.monotonic()
        with self.cond:
            grpc_checks = []
            for c in self.checks.values():
                if c.kind == "grpc" and c.next_probe <= now:
                    c.next_probe = now + c.interval
                    grpc_checks.append((c.check_id, c.grpc))
        results = {cid: bool(probe(target)) for cid, target in grpc_checks if probe is not None}
        with self.cond:
            for check in list(self.checks.values()):
                service = self.services.get(check.service_id)
                if service is None:
                    continue
                if check.kind == "ttl" and check.deadline is not None and now > check.deadline:
                    self._set_status(check, service, "critical", "TTL expired")
                elif check.check_id in results:
                    ok = results[check.check_id]
                    self._set_status(
                        check,
                        service,
                        "passing" if ok else "critical",
                        f"gRPC check {check.grpc}: {'success' if ok else 'failed'}",
                    )
            for check in list(self.checks.values()):
                service = self.services.get(check.service_id)
                if (
                    service is not None
                    and check.deregister_after is not None
                    and check.critical_since is not None
                    and now - check.critical_since > check.deregister_after
                ):
                    self._remove(service)

    # -- reads ---------------------------------------------------------------------------------

    def health(self, name: str, *, passing: bool, tags: list[str], allowed: bool) -> list[Any]:
        """The body of ``/v1/health/service/<name>``; call with ``cond`` held."""
        entries = []
        for service in self.services.values():
            if service.name != name or not allowed:
                continue
            have = {t.lower() for t in service.tags}
            if any(t.lower() not in have for t in tags):
                continue
            node = self.node
            checks = [check_json(node, self.checks[c], service) for c in service.checks]
            checks.append(serf_json(node))
            if passing and any(c["Status"] != "passing" for c in checks):
                continue
            entries.append(
                {
                    "Node": node_json(node, self.node_address, self.datacenter),
                    "Service": service_json(service),
                    "Checks": checks,
                }
            )
        return entries


def _same(old: Service, new: Service, checks: dict[str, Check], parsed: list[Check]) -> bool:
    """Whether a re-registration changes nothing a query shows (then nothing is written)."""
    fields = ("name", "tags", "address", "port", "meta", "weights", "checks")
    if any(getattr(old, f) != getattr(new, f) for f in fields):
        return False
    for check in parsed:
        existing = checks.get(check.check_id)
        if existing is None or (existing.ttl, existing.deregister_after, existing.grpc) != (
            check.ttl,
            check.deregister_after,
            check.grpc,
        ):
            return False
    return True
