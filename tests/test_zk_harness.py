"""naming.testing.zookeeper on real servers: modes, faults, session expiry, logs in reports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState

from naming.testing import DEFAULT_TIMEOUT, wait_until
from naming.testing.zookeeper import ZkServer, expire_session, four_letter
from tests._zk import kazoo_client

ROOT = Path(__file__).resolve().parent.parent


def test_a_server_serves_standalone_with_the_admin_server_off(zk_private: ZkServer) -> None:
    assert zk_private.mode() == "standalone"
    assert four_letter(zk_private.port, "ruok") == "imok"
    config = (zk_private.workdir / f"{zk_private.name}.cfg").read_text()
    assert "admin.enableServer=false" in config
    assert "clientPortAddress=127.0.0.1" in config


def test_pause_kill_and_restart_keep_ports_and_data(zk_private: ZkServer) -> None:
    port = zk_private.port
    client = kazoo_client(zk_private.endpoint)
    try:
        client.create("/kept", b"v")
    finally:
        client.stop()
        client.close()
    zk_private.pause()
    assert zk_private.paused and four_letter(port, "ruok", timeout=0.2) == ""
    zk_private.resume()
    zk_private.kill()
    assert not zk_private.running
    zk_private.start()
    assert zk_private.port == port
    client = kazoo_client(zk_private.endpoint)
    try:
        assert client.get("/kept")[0] == b"v"
    finally:
        client.stop()
        client.close()


def test_expire_session_ends_the_session_and_its_ephemeral_nodes(
    zk_server: ZkServer, zk_root: str, zk_client: KazooClient
) -> None:
    client = kazoo_client(zk_server.endpoint, timeout=4.0)
    states: list[str] = []
    client.add_listener(states.append)
    try:
        client.create(f"{zk_root}/e", b"", ephemeral=True, makepath=True)
        old = client.client_id[0]
        expire_session(zk_server.endpoint, client)
        wait_until(lambda: KazooState.LOST in states, DEFAULT_TIMEOUT, "the session LOST")
        assert zk_client.exists(f"{zk_root}/e") is None
        wait_until(lambda: client.connected, DEFAULT_TIMEOUT, "a new session")
        assert client.client_id[0] != old
    finally:
        client.stop()
        client.close()


def test_a_missing_jar_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install zookeeper"):
        ZkServer(jar=str(tmp_path / "nothing.jar"))


def test_a_failing_test_shows_the_zookeeper_log_in_its_report(tmp_path: Path) -> None:
    test_file = tmp_path / "test_fails.py"
    test_file.write_text(
        textwrap.dedent(
            """
            def test_fails(zk_private):
                assert False, "failing on purpose"

            def test_passes(zk_private):
                pass
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests._zk",
            "-p",
            "no:cacheprovider",
            "-q",
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout
    report = result.stdout.split("failing on purpose", 1)[1]
    assert "zookeeper zk1 127.0.0.1:" in report
    assert "binding to port" in report.lower() or "starting server" in report.lower()
