"""Registration in Consul: an agent service with a TTL check, passed every ``ttl / 3`` seconds.

* The service ID is ``instance_id``, by default ``{service}-{host}-{port}``: one ID per instance,
  so a restarted server replaces its own service and two servers never share one.
* The check (ID ``service:<service id>``) starts critical, as Consul's do; the registration passes
  it at once and then every ``ttl / 3`` seconds. ``deregister_after`` becomes the check's
  ``DeregisterCriticalServiceAfter``.
* An agent restart loses the services registered through its API. The next pass then gets 404
  (``Unknown check ID``; older agents: 500 ``does not have associated TTL``), which py-consul's
  ``ttl_pass()`` turns into ``False``: the registration sees it and registers the service again.
* An unreachable agent is retried for ever, with jittered backoff, until ``close()``.
* ``pause()`` fails the check (the service leaves the passing set), ``resume()`` passes it;
  ``close()`` deregisters at once; ``close()`` and ``pause()`` wait at most ``close_timeout``
  seconds (2 by default) for the agent.
* ``check="grpc"``: instead of a TTL, a gRPC health check on the address, which the agent probes
  every ``ttl / 3`` seconds; each round registers again (a no-op while nothing changed), and
  ``pause()`` deregisters the service until ``resume()``.

Metadata: ``weight`` becomes ``Weights.Passing``, ``tags`` (a list) joins the ``tags`` option in
``Tags``, and every other key goes to ``Meta``, whose values Consul wants as strings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from naming.core import Address, BackendUnavailableError, Backoff, KeptRegistration, NamingError

from ._consul_client import ConsulConnection

__all__ = ["ConsulRegistration", "service_payload"]

log = logging.getLogger("naming.consul")

_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")


def _duration(seconds: float) -> str:
    return f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".") + "s"


def service_payload(
    address: Address, tags: tuple[str, ...]
) -> tuple[str, int, list[str], dict[str, str], dict[str, int] | None]:
    """Host, port, Tags, Meta and Weights for ``address``; ValueError for what Consul refuses."""
    host, _, port = address.addr.rpartition(":")
    host = host.strip("[]")
    metadata: Mapping[str, Any] = address.metadata or {}
    all_tags = list(tags)
    meta: dict[str, str] = {}
    weights = None
    for key, value in metadata.items():
        if key == "weight":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"consul: weight must be a positive whole number, got {value!r}")
            weights = {"Passing": value, "Warning": 1}
        elif key == "tags":
            all_tags += [str(tag) for tag in value]
        elif not _META_KEY.match(key):
            raise ValueError(f"consul: the metadata key {key!r} is not a valid Consul Meta key")
        elif not isinstance(value, str):
            raise ValueError(
                f"consul: metadata {key!r} must be a string (Consul's Meta), got {type(value).__name__}"
            )
        else:
            meta[key] = value
    return host, int(port), all_tags, meta, weights


class ConsulRegistration(KeptRegistration):
    """See the module docstring. Thread-safe; ``close()`` is idempotent."""

    def __init__(
        self,
        connection: ConsulConnection,
        address: Address,
        *,
        ttl: float,
        instance_id: str | None = None,
        tags: tuple[str, ...] = (),
        check: str = "ttl",
        deregister_after: float | None = None,
        close_timeout: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        settings = connection.settings
        host, port, all_tags, meta, weights = service_payload(address, tags)
        self.address = address
        self.service = settings.service
        self.service_id = instance_id or f"{settings.service}-{host}-{port}"
        self.check_id = f"service:{self.service_id}"
        self.ttl = ttl
        self.kind = check
        self.close_timeout = close_timeout
        self._conn = connection
        definition: dict[str, Any] = {"CheckID": self.check_id, "Name": f"{self.service} {check}"}
        if check == "grpc":
            definition.update(GRPC=f"{host}:{port}", Interval=_duration(ttl / 3))
        else:
            definition["TTL"] = _duration(ttl)
        if deregister_after is not None:
            definition["DeregisterCriticalServiceAfter"] = _duration(deregister_after)
        self._register_args: dict[str, Any] = {
            "name": self.service,
            "service_id": self.service_id,
            "address": host,
            "port": port,
            "tags": all_tags or None,
            "meta": meta or None,
            "weights": weights,
            "check": definition,
            "token": settings.token,
        }
        self._registered = False
        self.registrations = 0  # how many times the service was registered (tests read it)
        self._setup("consul", self.service_id, backoff or Backoff(maximum=max(ttl / 3, 0.1)), log)
        self._start(f"naming-consul-ttl-{self.service_id}", "the agent")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self._paused else self.kind
        return f"<ConsulRegistration {self.service_id} at {self._conn.settings.endpoint} ({state})>"

    # -- what KeptRegistration asks of a backend ------------------------------------------------

    def _withdraw(self, why: str, taken: Any) -> None:
        try:
            if why == "close" or self.kind == "grpc":
                self._deregister(self.close_timeout)
            else:  # paused: the check fails, the service stays registered
                self._conn.call_within(
                    self.close_timeout,
                    "check fail",
                    lambda c: c.agent.check.ttl_fail(
                        self.check_id, notes="paused", token=self._conn.settings.token
                    ),
                )
        except NamingError as exc:
            if why == "close":
                log.warning(
                    "%s; on close, %s stays until its TTL runs out and it goes critical",
                    exc,
                    self.service_id,
                )
            else:
                log.warning(
                    "%s; on pause, %s goes critical when its TTL runs out", exc, self.service_id
                )

    def _release(self) -> None:
        self._conn.close()  # ends a request the TTL thread may be waiting in

    # -- the TTL rounds ----------------------------------------------------------------------------

    def _keep(self) -> None:
        """One round: the service is there (registered again if the agent lost it) and passing."""
        with self._lock:
            if self._paused or self._closed:
                return
        if self.kind == "grpc" or not self._registered:
            self._register()
            if self.kind == "grpc":
                return
        if not self._pass():
            log.warning(
                "consul: the agent at %s forgot %s (restarted?); registering it again",
                self._conn.settings.endpoint,
                self.service_id,
            )
            self._registered = False
            self._register()
            self._pass()
        if self._is_paused():  # paused while passing: fail it again
            self._conn.call(
                "check fail",
                lambda c: c.agent.check.ttl_fail(self.check_id, token=self._conn.settings.token),
            )

    def _register(self) -> None:
        self._conn.call(
            "service register", lambda c: c.agent.service.register(**self._register_args)
        )
        with self._lock:
            self.registrations += 1
            self._registered = True
        if self._closed:  # closed meanwhile: leave nothing behind
            self._deregister()

    def _pass(self) -> bool:
        """Pass the TTL check; False when the agent does not know it (404, or 500 on old agents)."""
        token = self._conn.settings.token
        try:
            return bool(
                self._conn.call(
                    "check pass", lambda c: c.agent.check.ttl_pass(self.check_id, token=token)
                )
            )
        except BackendUnavailableError as exc:
            if "does not have associated TTL" in str(exc):
                return False
            raise

    def _deregister(self, within: float | None = None) -> None:
        token = self._conn.settings.token
        self._conn.call_within(
            within or self._conn.settings.timeout,
            "service deregister",
            lambda c: c.agent.service.deregister(self.service_id, token=token),
        )
        with self._lock:
            self._registered = False

    def _is_paused(self) -> bool:
        with self._lock:
            return self._paused
