"""The etcd watcher: snapshot, then watch from the snapshot's revision + 1, and never lose an event.

One thread per watcher runs the kit's outage loop (``naming.core.RegistryWatcher``). It reads the
prefix with ``get_prefix`` (the snapshot and its revision), then opens its own Watch stream from
revision + 1, marked ``hasleader`` so that a member cut off from the leader drops it. When the
stream breaks it keeps the last known set and re-watches from the last revision it fully received
+ 1, with jittered backoff, on the next host. If that revision was compacted, it takes a new
snapshot and publishes it: the balancer sees only the difference.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from naming.core import Address, BackendUnavailableError, Backoff, RecordSkipper, RegistryWatcher

from ._etcd_client import EtcdConnection, classify
from ._etcd_records import CODEC, decode_snapshot

__all__ = ["EtcdWatcher", "prefix_end"]

log = logging.getLogger(__name__)

_PUT, _DELETE = 0, 1


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class EtcdWatcher(RegistryWatcher):
    """Watches every record under the service's key prefix. See the module docstring."""

    def __init__(self, connection: EtcdConnection, *, backoff: Backoff | None = None) -> None:
        super().__init__(
            "etcd",
            connection.settings.service,
            backoff=backoff,
            logger=log,
            join_timeout=connection.settings.timeout + 2,
        )
        self._conn = connection
        self._prefix = connection.settings.key_prefix.encode()
        self._records: dict[bytes, Address] = {}
        self._counts: Counter[Address] = Counter()
        self._skipper: RecordSkipper[bytes] = RecordSkipper("etcd", CODEC, logger=log)
        self._revision: int | None = None
        self._call_lock = threading.Lock()
        self._call: Any = None
        self.start()

    @property
    def revision(self) -> int | None:
        """The last store revision whose events have all been applied."""
        return self._revision

    def __repr__(self) -> str:
        return f"<EtcdWatcher {self._prefix.decode()!r} at {self._conn.host}>"

    # -- the loop's two halves (naming.core.RegistryWatcher runs them) ----------------------------

    def snapshot(self) -> None:
        """Read the prefix and publish it; the watch goes on from its revision + 1."""
        prefix = self._prefix.decode()
        response = self._conn.call("get", lambda client: client.get_prefix_response(prefix))
        records = decode_snapshot(response.kvs, self._skipper.skip)
        self._skipper.recovered(records)
        self._records = records
        self._counts = Counter(records.values())
        # the distinct addresses in order, as a plain dict: publish() takes its keys with their
        # hashes instead of hashing every address again
        self.publish(dict(self._counts))
        self._revision = response.header.revision
        log.debug("etcd: snapshot of %s at revision %d", prefix, self._revision)

    def watch(self) -> None:
        """Follow the prefix from the revision after the last one applied; returns for a new
        snapshot (that revision was compacted, or the member is behind)."""
        from etcd3 import etcdrpc  # late: only the etcd backend needs the client library

        assert self._revision is not None
        request = etcdrpc.WatchRequest(
            create_request=etcdrpc.WatchCreateRequest(
                key=self._prefix,
                range_end=prefix_end(self._prefix),
                start_revision=self._revision + 1,
                progress_notify=True,
            )
        )
        client = self._conn.client()
        host = self._conn.host
        finished = threading.Event()

        def requests() -> Any:
            yield request
            finished.wait()  # keep the request side open until the stream is done

        metadata = (*(client.metadata or ()), ("hasleader", "true"))
        try:
            call = etcdrpc.WatchStub(client.channel).Watch(
                requests(), credentials=client.call_credentials, metadata=metadata
            )
            with self._call_lock:
                self._call = call
            if self.stopping:
                call.cancel()
            for response in call:
                if not self._handle(response, host):
                    return
        except Exception as exc:
            if self.stopping:
                return
            error = classify("watch", host, exc)
            if isinstance(error, BackendUnavailableError):
                self._conn.reset(client)
            raise error from exc
        finally:
            finished.set()
            with self._call_lock:
                self._call = None
        if not self.stopping:
            self._conn.reset(client)
            raise BackendUnavailableError(f"etcd: the watch stream on {host} ended")

    def _handle(self, response: Any, host: str) -> bool:
        """Apply one watch response; False when a new snapshot is needed."""
        assert self._revision is not None
        if response.compact_revision:
            log.info(
                "etcd: revision %d of %s was compacted (at %d); taking a new snapshot",
                self._revision + 1,
                self._prefix.decode(),
                response.compact_revision,
            )
            self._revision = None
            return False
        if response.canceled:
            reason = response.cancel_reason or "no reason given"
            raise BackendUnavailableError(f"etcd: the watch on {host} was canceled: {reason}")
        if response.created:
            if response.header.revision < self._revision:
                log.warning(
                    "etcd: %s is behind revision %d; taking a new snapshot", host, self._revision
                )
                self._revision = None
                return False
            self.resumed()
            log.debug(
                "etcd: watching %s on %s from %d", self._prefix.decode(), host, self._revision + 1
            )
            return True
        if response.events:
            for event in response.events:
                self._apply(event)
            self._revision = max(self._revision, max(e.kv.mod_revision for e in response.events))
        else:  # progress notification: every event up to the header revision was sent
            self._revision = max(self._revision, response.header.revision)
        return True

    def _apply(self, event: Any) -> None:
        key = event.kv.key
        if event.type == _DELETE:
            self._forget(key)
            return
        address = self._skipper.decode(key, event.kv.value)
        if address is None:
            self._forget(key)
        elif self._records.get(key) != address:
            self._forget(key)
            self._records[key] = address
            self._counts[address] += 1
            if self._counts[address] == 1:
                self.add(address)

    def _forget(self, key: bytes) -> None:
        address = self._records.pop(key, None)
        if address is None:
            return
        self._counts[address] -= 1
        if self._counts[address] == 0:
            del self._counts[address]
            self.discard(address)

    # -- closing -------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Cancel the watch stream, if one is open: the loop sees it end and stops."""
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()

    def release(self) -> None:
        self._conn.close()
