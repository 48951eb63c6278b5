"""A hung etcd member (SIGSTOP: sockets open, no answers): noticed, left, and bounded waits."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

import naming
from backends._etcd_register import DEFAULT_CLOSE_TIMEOUT
from naming import Address
from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.etcd import EtcdCluster, EtcdServer
from tests._etcd_helpers import Follower, keys

# The feature's correctness bound: a record put through a live member reaches the watcher within
# this many seconds of the member it watched on hanging (the check needs about 7 s by default).
HANG_BOUND = 15.0
# close() and pause() wait at most DEFAULT_CLOSE_TIMEOUT; this much more is scheduling slack.
SLACK = 1.5
HUNG = "(hung?)"


def _messages(
    caplog: pytest.LogCaptureFixture, text: str, level: int = logging.WARNING
) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()]


def _lease(member: EtcdServer, key: str) -> int:
    data = json.loads(member.etcdctl("get", key, "-w", "json").stdout)
    return int(data["kvs"][0].get("lease", 0))


def test_a_hung_member_is_left_for_a_live_one_by_the_watcher_and_the_keepalive(
    etcd_cluster: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    leader = etcd_cluster.leader()
    # A follower, so that no election follows (a new leader would extend every lease anyway).
    hung = next(m for m in etcd_cluster.members if m is not leader)
    live = [m for m in etcd_cluster.members if m is not hung]
    # The hung member first: the watcher and the registration both start on it.
    tgt = f"etcd://{','.join(m.endpoint for m in [hung, *live])}/svc?prefix=/hang"
    ttl = 6
    with caplog.at_level(logging.WARNING):
        follower = Follower(naming.resolve(tgt))
        registration = naming.register(tgt, "10.0.0.1:80", ttl=ttl)
        try:
            follower.wait_for({"10.0.0.1:80"})
            lease = registration.lease
            hung.pause()
            hung_at = time.monotonic()
            leader.etcdctl("put", "/hang/svc/b", "10.0.0.2:80")
            follower.wait_for(
                {"10.0.0.1:80", "10.0.0.2:80"},
                timeout=HANG_BOUND - (time.monotonic() - hung_at),
            )
            # The lease outlives its ttl: the keepalive left the hung member in time.
            remaining = hung_at + ttl + 2 - time.monotonic()
            assert follower.quiet_for(max(remaining, 0)) == []
            assert registration.lease == lease
            assert _lease(leader, "/hang/svc/10.0.0.1:80") == lease
        finally:
            hung.resume()
        registration.close()
        follower.wait_for({"10.0.0.2:80"})
        follower.watcher.close()
    warnings = _messages(caplog, HUNG)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"etcd: {hung.endpoint} answered nothing on the watch stream for 5 s (hung?)"
    )


def test_a_hung_etcd_is_noticed_once_and_the_watch_resumes_when_it_answers_again(
    etcd_private: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    etcd_private.put("/one/svc/a", "10.0.0.1:80")
    tgt = f"etcd://{etcd_private.endpoint}/svc?prefix=/one&timeout=1"
    with caplog.at_level(logging.DEBUG):
        follower = Follower(naming.resolve(tgt))
        try:
            follower.wait_for({"10.0.0.1:80"})
            etcd_private.pause()
            follower.wait_until(
                lambda: bool(_messages(caplog, HUNG)), HANG_BOUND, "a warning about the hung etcd"
            )
            # Every later attempt fails the same way: logged at DEBUG, the set kept.
            follower.wait_until(
                lambda: bool(_messages(caplog, HUNG, logging.DEBUG)),
                HANG_BOUND,
                "a second attempt on the hung etcd",
            )
            assert follower.addresses == {Address("10.0.0.1:80")}
            # A watcher closed while etcd hangs ends its thread before close() returns.
            other = naming.resolve(tgt.replace("/svc?", "/other?"))
            assert other.next(timeout=0.2) == []
            other.close()
            assert [t for t in threading.enumerate() if t.name == "naming-etcd-watch-other"] == []
        finally:
            etcd_private.resume()
        etcd_private.put("/one/svc/b", "10.0.0.2:80")
        follower.wait_for({"10.0.0.1:80", "10.0.0.2:80"})
        follower.watcher.close()
    assert len(_messages(caplog, HUNG)) == 1
    assert _messages(caplog, "etcd: watching svc again", logging.INFO)


def test_close_and_pause_against_a_hung_etcd_return_in_time_and_the_records_go_with_the_leases(
    etcd_private: EtcdServer, caplog: pytest.LogCaptureFixture
) -> None:
    tgt = f"etcd://{etcd_private.endpoint}/svc?prefix=/bounded"  # calls wait 5 s by default
    ttl = 3
    closing = naming.register(tgt, "10.0.0.1:80", ttl=ttl)
    pausing = naming.register(tgt, "10.0.0.2:80", ttl=ttl)
    assert len(keys(etcd_private, "/bounded/")) == 2
    with caplog.at_level(logging.WARNING):
        etcd_private.pause()
        try:
            calls = [threading.Thread(target=closing.close), threading.Thread(target=pausing.pause)]
            for call in calls:
                call.start()
            for call in calls:
                call.join(DEFAULT_CLOSE_TIMEOUT + SLACK)
            assert [call.is_alive() for call in calls] == [False, False]
        finally:
            etcd_private.resume()
        for call in calls:
            call.join()
    assert closing.closed
    gone = _messages(caplog, "goes when its lease expires")
    assert sorted(m.split("; on ")[1].split(",")[0] for m in gone) == ["close", "pause"]
    # Revoking failed, so the leases take the records: within their ttl of the last refresh.
    wait_until(
        lambda: keys(etcd_private, "/bounded/") == {},
        ttl + DEFAULT_TIMEOUT,
        "the records to go with their leases",
    )
    pausing.resume()
    wait_until(
        lambda: list(keys(etcd_private, "/bounded/")) == ["/bounded/svc/10.0.0.2:80"],
        DEFAULT_TIMEOUT,
        "the resumed record",
    )
    pausing.close()
    assert keys(etcd_private, "/bounded/") == {}
