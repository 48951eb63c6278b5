"""The etcd watcher: snapshot, then watch from the snapshot's revision + 1, and never lose an event.

One thread per watcher runs the kit's outage loop (``naming.core.RegistryWatcher``). It reads the
prefix in pages pinned to one revision (``_etcd_snapshot.read_pages``), then opens its own Watch
stream from revision + 1, marked ``hasleader`` so that a member cut off from the leader drops it.
When the stream breaks it keeps the last known set and re-watches from the last revision it fully
received + 1, with jittered backoff, on the next host. If that revision was compacted, it takes a
new snapshot and publishes it: the balancer sees only the difference.

A member can also hang (stopped, its disk stuck, SIGSTOP) with its connections open: nothing
breaks, nothing arrives, and gRPC keepalive pings did not notice it with grpcio 1.85. So the stream
asks for progress (``WatchRequest(progress_request=...)``, etcd 3.4 and later) every
``PROGRESS_INTERVAL`` seconds; when nothing at all comes back within the connection's ``timeout``
(the create request counts too), the stream is given up with one warning and the next member is
tried. A hung member is left within ``PROGRESS_INTERVAL + timeout`` seconds (7 s by default).
Before a stream is opened, a read of one key with that deadline checks that the member answers.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any

from naming.core import (
    Address,
    BackendUnavailableError,
    Backoff,
    NamingError,
    RecordSkipper,
    RegistryWatcher,
)

from ._etcd_client import EtcdConnection, classify
from ._etcd_records import CODEC, decode_snapshot
from ._etcd_snapshot import prefix_end, read_pages

__all__ = ["PROGRESS_INTERVAL", "EtcdWatcher", "prefix_end"]

log = logging.getLogger("naming.etcd")

_PUT, _DELETE = 0, 1

PROGRESS_INTERVAL = 2.0
"""Seconds between two progress requests on an open watch stream."""


class _Liveness:
    """Whether the member behind one watch stream answers: responses answer, the request side asks.

    Thread-safe: the watcher's thread reads responses, gRPC's thread consumes the requests.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._answered = False
        self._done = False
        self.hung = False

    def answered(self) -> None:
        if not self._answered:  # a plain read: most responses find it set already
            with self._cond:
                self._answered = True
                self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_answer(self, timeout: float) -> bool:
        """True when something came back (or the stream is done) within ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._answered or self._done, timeout)

    def wait_done(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the stream to end; if it goes on, expect a new answer."""
        with self._cond:
            done = self._cond.wait_for(lambda: self._done, timeout)
            if not done:
                self._answered = False
            return done


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
        self._watch_id: int | None = None
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
        """Read the prefix, page by page at one revision, and publish it; the watch goes on from
        that revision + 1."""
        records: dict[bytes, Address] = {}
        revision = 0
        for kvs, page_revision in read_pages(self._conn, self._prefix):
            records.update(decode_snapshot(kvs, self._skipper.skip))
            revision = page_revision
        self._skipper.recovered(records)
        self._records = records
        self._counts = Counter(records.values())
        # the distinct addresses in order, as a plain dict: publish() takes its keys with their
        # hashes instead of hashing every address again
        self.publish(dict(self._counts))
        self._revision = revision
        log.debug("etcd: snapshot of %s at revision %d", self._prefix.decode(), revision)

    def watch(self) -> None:
        """Follow the prefix from the revision after the last one applied; returns for a new
        snapshot (that revision was compacted, or the member is behind)."""
        from etcd3 import etcdrpc  # late: only the etcd backend needs the client library

        assert self._revision is not None
        create = etcdrpc.WatchRequest(
            create_request=etcdrpc.WatchCreateRequest(
                key=self._prefix,
                range_end=prefix_end(self._prefix),
                start_revision=self._revision + 1,
                progress_notify=True,
            )
        )
        progress = etcdrpc.WatchRequest(progress_request=etcdrpc.WatchProgressRequest())
        client = self._conn.client()
        host = self._conn.host
        deadline = self._conn.settings.timeout
        liveness = _Liveness()

        def requests() -> Any:
            yield create
            while liveness.wait_answer(deadline):
                if liveness.wait_done(PROGRESS_INTERVAL):
                    return  # the stream is over
                yield progress
            liveness.hung = True  # nothing came back in time: give the stream up
            self.interrupt(stream_only=True)

        # A stream opened on a channel that is still connecting waits to send its first request for
        # as long as gRPC tries to connect (20 s), and the progress checks only start after that:
        # so first a read of one key, which answers (or fails) within the deadline.
        probe = etcdrpc.RangeRequest(key=self._prefix, keys_only=True, serializable=True)
        try:
            client.kvstub.Range(
                probe, deadline, credentials=client.call_credentials, metadata=client.metadata
            )
        except Exception as exc:
            if self.stopping:
                return
            liveness.hung = "DEADLINE_EXCEEDED" in str(classify("watch", host, exc))
            raise self._broken(exc, client, host, liveness) from exc
        metadata = (*(client.metadata or ()), ("hasleader", "true"))
        try:
            try:
                call = etcdrpc.WatchStub(client.channel).Watch(
                    requests(), credentials=client.call_credentials, metadata=metadata
                )
                with self._call_lock:
                    self._call = call
                if self.stopping or liveness.hung:
                    call.cancel()
                responses = iter(call)
            except Exception as exc:
                raise self._broken(exc, client, host, liveness) from exc
            while True:
                try:
                    response = next(responses)
                except StopIteration:
                    break
                except Exception as exc:
                    if self.stopping:
                        return
                    raise self._broken(exc, client, host, liveness) from exc
                liveness.answered()
                try:
                    going_on = self._handle(response, host)
                except BackendUnavailableError:  # the watch was canceled: try the next member
                    self._conn.reset(client)
                    raise
                if not going_on:
                    return
        finally:
            liveness.finish()
            with self._call_lock:
                self._call = None
        if not self.stopping:
            self._conn.reset(client)
            raise BackendUnavailableError(f"etcd: the watch stream on {host} ended")

    def _broken(
        self, exc: BaseException, client: Any, host: str, liveness: _Liveness
    ) -> NamingError:
        """The error for a stream that failed; the connection moves on when it can be retried."""
        error: NamingError
        if liveness.hung:
            error = BackendUnavailableError(
                f"etcd: {host} answered nothing on the watch stream for "
                f"{self._conn.settings.timeout:g} s (hung?); trying the next member"
            )
        else:
            error = classify("watch", host, exc)
        if isinstance(error, BackendUnavailableError):
            self._conn.reset(client)
        return error

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
            self._watch_id = response.watch_id
            self.resumed()
            log.debug(
                "etcd: watching %s on %s from %d", self._prefix.decode(), host, self._revision + 1
            )
            return True
        if response.events:
            for event in response.events:
                self._apply(event)
            self._revision = max(self._revision, max(e.kv.mod_revision for e in response.events))
        elif response.watch_id == self._watch_id:
            # a progress notification of this watch: every event up to the header revision was sent
            self._revision = max(self._revision, response.header.revision)
        # else the answer to a progress request (watch id -1): only a sign of life. etcd 3.4 may
        # send it ahead of events still on their way, so it moves no revision.
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

    def interrupt(self, stream_only: bool = False) -> None:
        """Cancel the watch stream, if one is open; unless ``stream_only``, also close the
        connection, which ends a snapshot in progress: the loop sees it end and stops."""
        with self._call_lock:
            call = self._call
        if call is not None:
            call.cancel()
        if not stream_only:
            self._conn.close()

    def release(self) -> None:
        self._conn.close()
