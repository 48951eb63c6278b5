"""Registration in etcd: a record under a lease, kept alive, put back whatever happens to it.

Every ``ttl / 3`` seconds the keepalive thread refreshes the lease and reads the record back:

* no lease yet, or the lease is gone (TTL <= 0, "lease not found", or etcd was away for longer than
  the TTL): grant a new lease and put the record again;
* the record is missing or holds another value (someone deleted or overwrote it): put it back;
* etcd cannot be reached: retry with jittered backoff, never giving up, until ``close()``.

Each call waits at most ``call_timeout(timeout, ttl)`` seconds: ``ttl / 3`` (at least 1 s) when
that is shorter than ``timeout``. A hung member (one that holds the connection open and answers
nothing) is so left for the next one while the lease still runs.

The key is ``{prefix}/{service}/{instance_id}``; ``instance_id`` defaults to the address, so a
restarted server replaces its own record instead of adding a second one, and two registrations of one
address share one record. ``close()`` and ``pause()`` revoke the lease, so the record goes at once;
they wait at most ``close_timeout`` seconds (2 by default) for etcd to answer, and when it does not,
the record goes when its lease runs out (at most ``ttl`` seconds later).

The keepalive thread never holds the lock during a call to etcd: ``pause()`` and ``close()`` take
the lease away from it, and a round that granted a lease meanwhile revokes it itself. A record is
only ever put under a lease that ``pause()`` or ``close()`` will revoke.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from naming.core import Address, BackendUnavailableError, Backoff, KeptRegistration, NamingError

from ._etcd_client import EtcdConnection
from ._etcd_records import encode_record

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "EtcdRegistration", "call_timeout"]

log = logging.getLogger("naming.etcd")

DEFAULT_CLOSE_TIMEOUT = 2.0


def call_timeout(timeout: float, ttl: float) -> float:
    """How long one call of a registration may wait: ``timeout``, or less for a short ttl."""
    return min(timeout, max(ttl / 3, 1.0))


class EtcdRegistration(KeptRegistration):
    """See the module docstring. Thread-safe; ``close()`` is idempotent."""

    def __init__(
        self,
        connection: EtcdConnection,
        address: Address,
        *,
        ttl: float,
        instance_id: str | None = None,
        backoff: Backoff | None = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        instance = instance_id if instance_id is not None else address.addr
        if not isinstance(instance, str) or not instance or "/" in instance:
            raise ValueError(
                f"etcd: instance_id must be a non-empty string without '/', got {instance!r}"
            )
        self.address = address
        self.key = connection.settings.key_prefix + instance
        self.ttl = max(1, round(ttl))  # etcd leases are whole seconds
        self.close_timeout = close_timeout
        self._value = encode_record(address).encode()
        self._conn = connection
        self._lease: int | None = None
        self._setup("etcd", self.key, backoff or Backoff(maximum=max(self.ttl / 3, 0.1)), log)
        self._start(f"naming-etcd-keepalive-{instance}", "etcd")

    @property
    def lease(self) -> int | None:
        """The lease the record is attached to now, if any."""
        return self._lease

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self._paused else f"lease {self._lease}"
        return f"<EtcdRegistration {self.key} ({state})>"

    # -- what KeptRegistration asks of a backend ------------------------------------------------

    def _take(self) -> int | None:
        lease, self._lease = self._lease, None
        return lease

    def _withdraw(self, why: str, lease: int | None) -> None:
        self._revoke(lease, self.close_timeout, why)

    def _release(self) -> None:
        self._conn.close()

    # -- the keepalive rounds --------------------------------------------------------------------

    def _keep(self) -> None:
        """One round: make sure a live lease exists and the record is there with our value."""
        with self._lock:
            if self._paused or self._closed:
                return
            lease = self._lease
        if lease is not None and self._refresh(lease) <= 0:
            log.warning("etcd: the lease of %s expired; registering again", self.key)
            self._forget(lease)
            lease = None
        if lease is None:
            self._grant_and_put()
            return
        value, current = self._conn.call("get", self._read)
        if (value != self._value or current != lease) and self._owns(lease):
            log.warning("etcd: the record %s was deleted or changed; putting it back", self.key)
            self._put(lease)

    def _refresh(self, lease: int) -> int:
        def refresh(client: Any) -> int:
            responses = list(client.refresh_lease(lease))
            return int(responses[0].TTL) if responses else 0

        return self._conn.call("keepalive", refresh)

    def _read(self, client: Any) -> tuple[bytes | None, int | None]:
        value, meta = client.get(self.key)
        return value, (meta.lease_id if meta is not None else None)

    def _grant_and_put(self) -> None:
        lease = self._conn.call("grant lease", lambda client: client.lease(self.ttl)).id
        with self._lock:
            owned = not (self._paused or self._closed)
            if owned:
                self._lease = lease
        if not owned:  # paused or closed while the lease was granted: no record under it
            self._revoke(lease, self.close_timeout, None)
            return
        self._put(lease)
        log.info(
            "etcd: registered %s as %s (lease %x, ttl %ds)",
            self.address.addr,
            self.key,
            lease,
            self.ttl,
        )

    def _put(self, lease: int) -> None:
        try:
            self._conn.call("put", lambda client: client.put(self.key, self._value, lease=lease))
        except BackendUnavailableError as exc:
            if "lease not found" in str(exc):
                self._forget(lease)  # expired, or revoked by pause(): the next round re-grants
            raise

    def _owns(self, lease: int) -> bool:
        """True while ``lease`` is still the registration's live lease."""
        with self._lock:
            return not (self._paused or self._closed) and self._lease == lease

    def _forget(self, lease: int) -> None:
        with self._lock:
            if self._lease == lease:
                self._lease = None

    def _revoke(self, lease: int | None, budget: float, why: str | None) -> None:
        """Revoke ``lease`` (deleting its record), trying each member once within ``budget``
        seconds; when that fails, the record goes with the lease. ``why`` names the caller in the
        warning; None (no record was put) logs at DEBUG."""
        if lease is None:
            return
        from etcd3 import etcdrpc  # late: only the etcd backend needs the client library

        deadline = time.monotonic() + budget
        request = etcdrpc.LeaseRevokeRequest(ID=lease)
        error: NamingError | None = None
        for _ in self._conn.settings.hosts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break

            def revoke(client: Any, remaining: float = remaining) -> None:
                client.leasestub.LeaseRevoke(
                    request,
                    remaining,
                    credentials=client.call_credentials,
                    metadata=client.metadata,
                )

            try:
                self._conn.call("revoke", revoke)
                return
            except BackendUnavailableError as exc:
                if "lease not found" in str(exc):
                    return  # expired already: the record is gone
                error = exc
            except NamingError as exc:
                error = exc
                break
        if why is None:
            log.debug("%s; the unused lease %x expires on its own", error, lease)
        else:
            log.warning(
                "%s; on %s, %s goes when its lease expires (ttl %ds)",
                error or f"etcd: no answer within {budget:g} s",
                why,
                self.key,
                self.ttl,
            )
