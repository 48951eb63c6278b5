"""Registration in etcd: a record under a lease, kept alive, put back whatever happens to it.

Every ``ttl / 3`` seconds the keepalive thread refreshes the lease and reads the record back:

* no lease yet, or the lease is gone (TTL <= 0, "lease not found", or etcd was away for longer than
  the TTL): grant a new lease and put the record again;
* the record is missing or holds another value (someone deleted or overwrote it): put it back;
* etcd cannot be reached: retry with jittered backoff, never giving up, until ``close()``.

The key is ``{prefix}/{service}/{instance_id}``; ``instance_id`` defaults to the address, so a
restarted server replaces its own record instead of adding a second one, and two registrations of one
address share one record. ``close()`` revokes the lease: the record goes at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from naming.core import Address, BackendUnavailableError, Backoff, NamingError, Registration

from ._etcd_client import EtcdConnection
from ._etcd_records import encode_record

__all__ = ["EtcdRegistration"]

log = logging.getLogger(__name__)


class EtcdRegistration(Registration):
    """See the module docstring. Thread-safe; ``close()`` is idempotent."""

    def __init__(
        self,
        connection: EtcdConnection,
        address: Address,
        *,
        ttl: float,
        instance_id: str | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        instance = instance_id if instance_id is not None else address.addr
        if not isinstance(instance, str) or not instance or "/" in instance:
            raise ValueError(
                f"etcd: instance_id must be a non-empty string without '/', got {instance!r}"
            )
        self.address = address
        self.key = connection.settings.key_prefix + instance
        self.ttl = max(1, round(ttl))  # etcd leases are whole seconds
        self._value = encode_record(address)
        self._conn = connection
        self._backoff = backoff or Backoff(maximum=max(self.ttl / 3, 0.1))
        self._lock = threading.Lock()
        self._lease: int | None = None
        self._paused = False
        self._closed = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        try:
            self._keep()
        except BackendUnavailableError as exc:
            log.warning("%s; %s will be registered once etcd answers", exc, self.key)
        except NamingError:
            connection.close()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"naming-etcd-keepalive-{instance}", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lease(self) -> int | None:
        """The lease the record is attached to now, if any."""
        return self._lease

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self._paused else f"lease {self._lease}"
        return f"<EtcdRegistration {self.key} ({state})>"

    def pause(self) -> None:
        with self._lock:
            self._check_open()
            if self._paused:
                return
            self._paused = True
            self._drop_lease()

    def resume(self) -> None:
        with self._lock:
            self._check_open()
            self._paused = False
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping.set()
            self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self._conn.settings.timeout + 2)
        with self._lock:
            self._drop_lease()
        self._conn.close()

    # -- the keepalive loop --------------------------------------------------------------------

    def _run(self) -> None:
        interval = self.ttl / 3
        delay = interval
        in_outage = False
        while not self._stopping.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    if self._closed:
                        return
                    if not self._paused:
                        self._keep()
            except BackendUnavailableError as exc:
                if not in_outage:
                    log.warning("%s; retrying to keep %s registered", exc, self.key)
                    in_outage = True
                delay = min(self._backoff.next(), interval)
                continue
            except NamingError as exc:
                log.error("%s; %s stays unregistered until resume()", exc, self.key)
                self._paused = True
            if in_outage:
                log.info("etcd: %s is registered again", self.key)
                in_outage = False
            self._backoff.reset()
            delay = interval

    def _keep(self) -> None:
        """One round: make sure a live lease exists and the record is there with our value."""
        if self._lease is not None and self._refresh() <= 0:
            log.warning("etcd: the lease of %s expired; registering again", self.key)
            self._lease = None
        if self._lease is None:
            self._grant_and_put()
            return
        value, lease = self._conn.call("get", self._read)
        if value != self._value.encode() or lease != self._lease:
            log.warning("etcd: the record %s was deleted or changed; putting it back", self.key)
            self._put()

    def _refresh(self) -> int:
        def refresh(client: Any) -> int:
            responses = list(client.refresh_lease(self._lease))
            return int(responses[0].TTL) if responses else 0

        return self._conn.call("keepalive", refresh)

    def _read(self, client: Any) -> tuple[bytes | None, int | None]:
        value, meta = client.get(self.key)
        return value, (meta.lease_id if meta is not None else None)

    def _grant_and_put(self) -> None:
        lease = self._conn.call("grant lease", lambda client: client.lease(self.ttl))
        self._lease = lease.id
        self._put()
        log.info(
            "etcd: registered %s as %s (lease %x, ttl %ds)",
            self.address.addr,
            self.key,
            lease.id,
            self.ttl,
        )

    def _put(self) -> None:
        try:
            self._conn.call(
                "put", lambda client: client.put(self.key, self._value, lease=self._lease)
            )
        except BackendUnavailableError as exc:
            if "lease not found" in str(exc):
                self._lease = None  # expired between refresh and put: the next round re-grants
            raise

    def _drop_lease(self) -> None:
        """Revoke the lease, which deletes the record; best effort, the TTL does it otherwise."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            self._conn.call("revoke", lambda client: client.revoke_lease(lease))
        except NamingError as exc:
            log.warning("%s; %s goes when its lease expires (ttl %ds)", exc, self.key, self.ttl)

    def _check_open(self) -> None:
        if self._closed:
            raise NamingError(f"etcd: the registration of {self.key} is closed")
