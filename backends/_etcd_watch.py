"""The etcd watcher: snapshot, then watch from the snapshot's revision + 1, and never lose an event.

One thread per watcher runs the loop. It reads the prefix with ``get_prefix`` (the snapshot and its
revision), then opens its own Watch stream from revision + 1, marked ``hasleader`` so that a member
cut off from the leader drops it. When the stream breaks it keeps the last known set and re-watches
from the last revision it fully received + 1, with jittered backoff, on the next host. If that
revision was compacted, it takes a new snapshot and publishes it: the balancer sees only the
difference.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from naming.core import Address, BackendUnavailableError, NamingError, SnapshotWatcher

from ._etcd_client import EtcdConnection, classify
from ._etcd_records import decode_record, decode_snapshot
from ._retry import Backoff

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


class EtcdWatcher(SnapshotWatcher):
    """Watches every record under the service's key prefix. See the module docstring."""

    def __init__(self, connection: EtcdConnection, *, backoff: Backoff | None = None) -> None:
        super().__init__(name="etcd", on_close=self._stop)
        self._conn = connection
        self._prefix = connection.settings.key_prefix.encode()
        self._records: dict[bytes, Address] = {}
        self._counts: Counter[Address] = Counter()
        self._warned: set[bytes] = set()
        self._revision: int | None = None
        self._backoff = backoff or Backoff()
        self._stopping = threading.Event()
        self._call_lock = threading.Lock()
        self._call: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"naming-etcd-watch-{connection.settings.service}", daemon=True
        )
        self._thread.start()

    @property
    def revision(self) -> int | None:
        """The last store revision whose events have all been applied."""
        return self._revision

    def __repr__(self) -> str:
        return f"<EtcdWatcher {self._prefix.decode()!r} at {self._conn.host}>"

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        in_outage = False
        while not self._stopping.is_set():
            try:
                if self._revision is None:
                    self._snapshot()
                self._watch()
            except BackendUnavailableError as exc:
                if self._stopping.is_set():
                    return
                if not in_outage:
                    log.warning("%s; keeping the last %d addresses", exc, len(self._counts))
                    in_outage = True
                else:
                    log.debug("%s", exc)
                self._stopping.wait(self._backoff.next())
            except NamingError as exc:
                log.error("%s; the watcher gives up", exc)
                self.fail(exc)
                return
            else:
                in_outage = False

    def _snapshot(self) -> None:
        prefix = self._prefix.decode()
        response = self._conn.call("get", lambda client: client.get_prefix_response(prefix))
        records = decode_snapshot(response.kvs, self._skip)
        if self._warned:
            self._warned -= records.keys()
        self._records = records
        self._counts = Counter(records.values())
        # the distinct addresses in order, as a plain dict: publish() takes its keys with their
        # hashes instead of hashing every address again
        self.publish(dict(self._counts))
        self._revision = response.header.revision
        log.debug("etcd: snapshot of %s at revision %d", prefix, self._revision)

    def _watch(self) -> None:
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
            if self._stopping.is_set():
                call.cancel()
            for response in call:
                if not self._handle(response, host):
                    return
        except Exception as exc:
            if self._stopping.is_set():
                return
            error = classify("watch", host, exc)
            if isinstance(error, BackendUnavailableError):
                self._conn.reset(client)
            raise error from exc
        finally:
            finished.set()
            with self._call_lock:
                self._call = None
        if not self._stopping.is_set():
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
            self._backoff.reset()
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
        address = self._decode(key, event.kv.value)
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

    def _decode(self, key: bytes, value: bytes) -> Address | None:
        try:
            address = decode_record(value)
        except ValueError as exc:
            self._skip(key, exc)
            return None
        self._warned.discard(key)
        return address

    def _skip(self, key: bytes, error: ValueError) -> None:
        """A value that is not a record: one warning per key, until it holds a record again."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning("etcd: skipping record %s: %s", key.decode(errors="replace"), error)

    # -- closing -------------------------------------------------------------------------------

    def _stop(self) -> None:
        self._stopping.set()
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not threading.current_thread():
            self._thread.join(self._conn.settings.timeout + 2)
        self._conn.close()
