"""The snapshot of a key prefix, read in pages that all see one revision.

One range request for the whole prefix fails once the answer outgrows what the client takes, and a
big prefix makes etcd build one big answer. So the prefix is read in pages, in key order: the first
page at the newest revision, every other page at the first page's revision (etcd keeps it until it
is compacted, and then says so: the snapshot starts again).

The first page holds at most ``FIRST_PAGE_KEYS`` keys; each later one as many as should make about
``PAGE_BYTES`` at the size of the keys read so far, between ``MIN_PAGE_KEYS`` and
``MAX_PAGE_KEYS``: a few round trips for small records, small pages for big ones. The next page is
asked for before the current one is decoded, so reading and decoding overlap. A page that etcd
cannot send in one message (RESOURCE_EXHAUSTED) is asked for again with a quarter of the keys, down
to one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

from naming.core import BackendUnavailableError

from ._etcd_client import EtcdConnection

__all__ = [
    "FIRST_PAGE_KEYS",
    "MAX_PAGE_KEYS",
    "MIN_PAGE_KEYS",
    "PAGE_BYTES",
    "prefix_end",
    "read_pages",
]

log = logging.getLogger("naming.etcd")

FIRST_PAGE_KEYS = 1000
MIN_PAGE_KEYS = 10
MAX_PAGE_KEYS = 10_000
PAGE_BYTES = 16 * 1024 * 1024


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with ``prefix``."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def read_pages(
    conn: EtcdConnection, prefix: bytes, first_keys: int = FIRST_PAGE_KEYS
) -> Iterator[tuple[list[Any], int]]:
    """Yield ``(key-values, revision)`` page by page; every page is at the same revision.

    Errors are the connection's: BackendUnavailableError to retry (the whole snapshot), NamingError
    to give up. The caller must read the pages to the end, or close the generator.
    """
    from etcd3 import etcdrpc  # late: only the etcd backend needs the client library

    end = prefix_end(prefix)
    limit = first_keys
    revision = 0  # the newest, for the first page
    start = prefix
    keys = size = 0  # read so far
    pending = _ask(conn, _page(etcdrpc, start, end, limit, revision))
    try:
        while True:
            try:
                response = conn.call("get", partial(_answer, pending))
            except BackendUnavailableError as exc:
                if "RESOURCE_EXHAUSTED" not in str(exc) or limit == 1:
                    raise
                limit = max(1, limit // 4)
                log.info("etcd: a page of %r was too big; asking for %d keys", prefix, limit)
                pending = _ask(conn, _page(etcdrpc, start, end, limit, revision))
                continue
            if not revision:
                revision = response.header.revision
            kvs = list(response.kvs)
            more = bool(response.more and kvs)
            if more:
                keys += len(kvs)
                size += response.ByteSize()
                per_key = max(size // keys, 1)
                limit = min(max(PAGE_BYTES // per_key, MIN_PAGE_KEYS), MAX_PAGE_KEYS)
                start = kvs[-1].key + b"\0"
                pending = _ask(conn, _page(etcdrpc, start, end, limit, revision))
            yield kvs, revision
            if not more:
                return
    finally:
        pending.cancel()  # a no-op once answered; a snapshot given up frees its last request


def _ask(conn: EtcdConnection, request: Any) -> Any:
    """Send one range request; its answer comes from ``.result()``."""

    def send(client: Any) -> Any:
        return client.kvstub.Range.future(
            request,
            client.timeout,
            credentials=client.call_credentials,
            metadata=client.metadata,
        )

    return conn.call("get", send)


def _answer(pending: Any, _client: Any) -> Any:
    return pending.result()


def _page(etcdrpc: Any, start: bytes, end: bytes, limit: int, revision: int) -> Any:
    return etcdrpc.RangeRequest(key=start, range_end=end, limit=limit, revision=revision)
