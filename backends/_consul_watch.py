"""The Consul watcher: blocking queries on ``/v1/health/service/<name>``, by Consul's rules.

``snapshot()`` asks with ``index=0`` (an answer at once) and publishes the whole set; ``watch()``
then asks again with the index of the last answer and ``wait``, and the agent holds the request
until the service changes or the wait runs out. On each answer (Consul's blocking-query docs):

* an index lower than the one sent, or 0, resets the next query to ``index=0``;
* an unchanged index is no change: nothing is published;
* a changed index publishes the whole answer; ``SnapshotWatcher`` hands the consumer the difference;
* after an answer that was no change (an unchanged or reset index), the next query starts at least
  ``MIN_INTERVAL`` after the last one, since such a query can come back at once (a wait of 0, an
  agent that answers early): the loop never spins. An answer with a change is followed by the next
  query at once, so a burst of changes is not slowed down.

An entry's address is ``Service.Address``, or ``Node.Address`` when that is empty. Its metadata is
``Service.Meta``, plus ``tags`` (when the service has tags) and ``weight`` (``Weights.Passing``,
when it is not Consul's default 1); a plain service has no metadata.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from naming.core import Address, NamingError, RegistryWatcher, record_address

from ._consul_client import ConsulConnection

__all__ = ["MIN_INTERVAL", "ConsulWatcher", "entry_address"]

log = logging.getLogger("naming.consul")

MIN_INTERVAL = 0.02  # seconds between the starts of two queries at least


def entry_address(entry: Any) -> Address:
    """The Address of one health entry; ValueError when the entry cannot be read."""
    service = entry.get("Service") or {}
    node = entry.get("Node") or {}
    host = service.get("Address") or node.get("Address")
    port = service.get("Port")
    if not host or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"the service {service.get('ID')!r} has no usable address and port")
    metadata: dict[str, Any] = dict(service.get("Meta") or {})
    if service.get("Tags"):
        metadata["tags"] = list(service["Tags"])
    weight = (service.get("Weights") or {}).get("Passing", 1)
    if weight != 1:
        metadata["weight"] = weight
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return record_address(addr, metadata or None)


class ConsulWatcher(RegistryWatcher):
    """Keeps the healthy instances of one service; see the module docstring."""

    def __init__(self, connection: ConsulConnection) -> None:
        settings = connection.settings
        super().__init__("consul", settings.service, logger=log)
        self._conn = connection
        self._index = 0
        self._last_start = 0.0
        self._pace = False  # the last answer was no change: keep the next query MIN_INTERVAL away
        self._skipped: set[str] = set()
        self.start()

    def __repr__(self) -> str:
        return f"<ConsulWatcher {self._conn.settings!r} index={self._index}>"

    def snapshot(self) -> None:
        index, entries = self._query(0)
        self._index = index
        self.publish(self._addresses(entries))

    def watch(self) -> None:
        while not self.stopping:
            index, entries = self._query(self._index)
            self.resumed()
            self._pace = True
            if index == self._index:
                continue  # the wait ran out: no change
            if index < self._index or index <= 0:
                log.info("consul: the index of %s went back; asking from 0", self.label)
                index = 0
            else:
                self._pace = False
            self._index = index
            self.publish(self._addresses(entries))

    def interrupt(self) -> None:
        self._conn.interrupt()

    def release(self) -> None:
        self._conn.close()

    def _query(self, index: int) -> tuple[int, list[Any]]:
        pause = self._last_start + MIN_INTERVAL - time.monotonic() if self._pace else 0.0
        if pause > 0 and self.sleep(pause):
            raise NamingError("consul: the watcher is closing")
        self._last_start = time.monotonic()
        settings = self._conn.settings

        def query(client: Any) -> tuple[int, list[Any]]:
            raw_index, entries = client.health.service(
                settings.service,
                index=index or None,
                wait=f"{settings.wait:g}s",
                passing=settings.passing,
                tag=list(settings.tags) or None,
                dc=settings.dc,
                near=settings.near,
                token=settings.token,
            )
            return int(raw_index or 0), list(entries or [])

        return self._conn.call(f"the health query of {settings.service}", query)

    def _addresses(self, entries: list[Any]) -> list[Address]:
        addresses = []
        for entry in entries:
            service_id = str((entry.get("Service") or {}).get("ID"))
            try:
                addresses.append(entry_address(entry))
            except (ValueError, TypeError, AttributeError) as exc:
                if service_id not in self._skipped:
                    log.warning("consul: skipping %s of %s: %s", service_id, self.label, exc)
                    self._skipped.add(service_id)
                continue
            self._skipped.discard(service_id)
        return addresses
