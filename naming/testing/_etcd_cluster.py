"""EtcdCluster: several etcd members wired into one cluster, for :mod:`naming.testing.etcd`."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from naming.core import Closeable

from . import DEFAULT_TIMEOUT
from ._etcd_process import EtcdError, _Client, _PortInUse, _run_etcdctl, find_etcd
from ._etcd_server import EtcdServer

__all__ = ["EtcdCluster"]

logger = logging.getLogger(__name__)


# -- cluster -------------------------------------------------------------------------------------


class EtcdCluster(Closeable, _Client):
    """``size`` members (3 by default) on loopback, one ``--initial-cluster-token`` per cluster.

    Members are :class:`EtcdServer` objects named e1, e2, ...: stop, kill, pause or restart them one
    by one; :meth:`leader` tells which one leads. ``etcdctl`` goes to all endpoints.
    """

    def __init__(
        self, size: int = 3, *, binary: str | None = None, workdir: Path | None = None
    ) -> None:
        if size < 1:
            raise ValueError("etcd: a cluster needs at least one member")
        binary = binary or find_etcd()
        self._owned_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="naming-etcd-cluster-")) if workdir is None else workdir
        )
        self.members: list[EtcdServer] = []
        try:
            for i in range(size):
                self.members.append(
                    EtcdServer(binary=binary, name=f"e{i + 1}", workdir=self.workdir)
                )
        except BaseException:
            self.close()
            raise
        self._token = f"naming-cluster-{uuid.uuid4().hex[:12]}"
        self._wire()
        self._closed = False

    @property
    def endpoints(self) -> str:
        return ",".join(m.endpoint for m in self.members)

    def __repr__(self) -> str:
        return f"<EtcdCluster {self.members!r}>"

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdCluster:
        """Launch every member at once and return when all serve."""
        deadline = time.monotonic() + timeout
        first = not any(m._started_once for m in self.members)
        try:
            self._start_all(deadline)
        except _PortInUse:
            if not first:
                raise
            for member in self.members:
                member.kill()
                member._move_ports()
            logger.info("etcd: a cluster port was taken, retrying on %s", self.endpoints)
            self._wire()
            self._start_all(deadline)
        return self

    def leader(self, timeout: float = DEFAULT_TIMEOUT) -> EtcdServer:
        """The member that is raft leader, waiting (bounded) while an election runs."""
        deadline = time.monotonic() + timeout
        while True:
            live = [m for m in self.members if m.running and not m.paused]
            if live:
                result = _run_etcdctl(
                    live[0].etcdctl_binary,
                    ",".join(m.endpoint for m in live),
                    ["endpoint", "status", "-w", "json"],
                    tls=None,
                    credentials=None,
                    check=False,
                )
                found = self._leader_from_status(result.stdout, live)
                if found is not None:
                    return found
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd: no leader among {self.endpoints} within {timeout}s")
            time.sleep(0.05)

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run etcdctl with every member as an endpoint."""
        return _run_etcdctl(
            self.members[0].etcdctl_binary,
            self.endpoints,
            args,
            tls=None,
            credentials=None,
            check=check,
        )

    def close(self) -> None:
        """SIGKILL every member and remove a workdir the cluster made. Idempotent."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            # SIGKILL: a member told to stop hands leadership over first, and the last members of a
            # cluster being torn down can wait 7 s on a transfer nobody can take. etcd writes its
            # WAL before it acknowledges, so the data survive a kill (a restart finds them).
            for member in self.members:
                member.kill()
        finally:
            for member in self.members:
                member.close()
            if self._owned_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _wire(self) -> None:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member._join(initial, self._token)

    def _start_all(self, deadline: float) -> None:
        for member in self.members:
            if not member.running:
                member._launch()
        try:
            for member in self.members:
                member._wait_ready(deadline)
        except EtcdError:
            for member in self.members:
                member.kill()
            raise

    @staticmethod
    def _leader_from_status(out: str, live: Sequence[EtcdServer]) -> EtcdServer | None:
        try:
            entries: list[Mapping[str, Any]] = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            return None
        by_port = {m.port: m for m in live}
        best: tuple[int, EtcdServer] | None = None
        for entry in entries:
            status = entry.get("Status", {})
            member_id = status.get("header", {}).get("member_id")
            if not member_id or status.get("leader") != member_id:
                continue
            port = str(entry.get("Endpoint", "")).rpartition(":")[2]
            member = by_port.get(int(port)) if port.isdigit() else None
            term = int(status.get("raftTerm", 0))
            if member is not None and (best is None or term > best[0]):
                best = (term, member)
        return best[1] if best is not None else None
