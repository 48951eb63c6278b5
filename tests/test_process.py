"""naming.testing.process: a real child process on free loopback ports, and what it leaves behind."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from naming.testing import DEFAULT_TIMEOUT, SHORT_TIMEOUT, wait_until
from naming.testing.etcd import EtcdError, EtcdServer
from naming.testing.process import (
    ExitedEarlyError,
    ManagedProcess,
    NotHealthyError,
    ProcessError,
    accepts_connections,
    free_ports,
    live_processes,
)

ROOT = Path(__file__).resolve().parent.parent

# The tiny server: `python -c TINY PORT [MODE]`. It prints its pid, then (mode "serve") listens on
# 127.0.0.1:PORT and answers every connection with "ok\n"; on SIGTERM it says so and exits 0.
# "die" exits 3 before listening, "mute" never listens, "stubborn" ignores SIGTERM, "family" first
# starts a grandchild (in its process group) that ignores SIGTERM.
TINY = r"""
import os, signal, socket, subprocess, sys, time
port, mode = int(sys.argv[1]), (sys.argv[2] if len(sys.argv) > 2 else "serve")
print(f"tiny: pid {os.getpid()} mode {mode}", flush=True)
if mode == "die":
    print("tiny: giving up before listening", flush=True)
    sys.exit(3)
if mode == "mute":
    time.sleep(60)
    sys.exit(0)
def on_term(*_):
    print("tiny: SIGTERM", flush=True)
    if mode != "stubborn":
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
if mode == "family":
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
         " print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    grandchild.stdout.readline()
    print(f"tiny: grandchild pid {grandchild.pid}", flush=True)
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", port))
sock.listen(16)
print(f"tiny: listening on {port}", flush=True)
while True:
    conn, _ = sock.accept()
    with conn:
        conn.sendall(b"ok\n")
"""


def answers(port: int, timeout: float = 0.5) -> bool:
    """Connect and read: True only if the server said "ok" within ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        return sock.recv(16) == b"ok\n"


def healthy(process: ManagedProcess) -> bool:
    try:
        return answers(process.port)
    except OSError:
        return False


def logged_pid(process: ManagedProcess, what: str = "pid") -> int:
    """The pid the tiny server printed in its current run (``what``: "pid" or "grandchild pid")."""
    for line in process.run_log().splitlines():
        if line.startswith(f"tiny: {what} "):
            return int(line.split()[len(what.split()) + 1])
    raise AssertionError(f"no {what} in the log:\n{process.run_log()}")


def state(pid: int) -> str:
    """The one-letter state of ``pid`` from /proc ("T" stopped, "Z" zombie), "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return ""


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return state(pid) in ("", "Z")  # an orphan that init has not reaped yet is dead too


Factory = Callable[..., ManagedProcess]


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Factory]:
    """Makes tiny servers; closes them afterwards and checks that none is left running."""
    made: list[ManagedProcess] = []
    before = set(live_processes())

    def make(mode: str = "serve", **options: Any) -> ManagedProcess:
        options.setdefault("name", f"tiny{len(made) + 1}")
        options.setdefault("healthy", healthy)
        process = ManagedProcess(
            lambda p: [sys.executable, "-c", TINY, str(p.port), mode], **options
        )
        made.append(process)
        return process

    yield make
    for process in made:
        process.close()
    assert set(live_processes()) == before


def test_start_uses_free_loopback_ports_and_returns_once_healthy(tiny: Factory) -> None:
    server = tiny(ports=2, name="tiny")
    first, second = server.ports
    assert first != second and server.port == first
    assert not accepts_connections(first)
    assert server not in live_processes()
    assert (server.running, server.pid) == (False, None)

    assert server.start() is server

    assert answers(server.port)  # healthy means it answers, not just that it was launched
    assert server.running and server.pid == logged_pid(server)
    assert server in live_processes()
    assert (
        repr(server) == f"<ManagedProcess tiny running pid={server.pid} ports=[{first}, {second}]>"
    )
    assert server.run_log().splitlines()[0] == (
        f"=== naming.testing.process: starting tiny on 127.0.0.1 ports {first}, {second}"
    )


def test_free_ports_never_hands_out_a_port_twice() -> None:
    ports = free_ports(5) + free_ports(5)
    assert len(set(ports)) == 10
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # each was free when handed out


def test_a_child_that_exits_before_it_is_healthy_raises_with_its_log_tail(tiny: Factory) -> None:
    server = tiny("die", name="tiny")
    with pytest.raises(ExitedEarlyError) as info:
        server.start()
    assert info.value.returncode == 3
    assert info.value.port_in_use is False
    message = str(info.value)
    assert message.startswith("process: tiny exited with code 3 before it was healthy; log ")
    assert "tiny: giving up before listening" in message
    assert info.value.tail.splitlines()[-1] == "tiny: giving up before listening"
    assert not server.running and server not in live_processes()


def test_a_child_that_never_gets_healthy_is_killed_and_the_error_has_its_log(
    tiny: Factory,
) -> None:
    pids: list[int | None] = []

    def never(process: ManagedProcess) -> bool:
        pids.append(process.pid)
        return False

    server = tiny("mute", name="tiny", healthy=never)
    with pytest.raises(NotHealthyError, match=r"^process: tiny was not healthy in time") as info:
        server.start(timeout=0.3)
    banner = "=== naming.testing.process: starting tiny on 127.0.0.1 ports"
    assert info.value.tail.startswith(banner) and banner in str(info.value)
    assert isinstance(info.value, ProcessError)
    assert len(set(pids)) == 1 and pids[0] is not None and len(pids) >= 2  # polled, one process
    assert gone(pids[0])
    assert not server.running and server not in live_processes()


def test_a_health_check_that_raises_kills_the_child(tiny: Factory) -> None:
    pids: list[int | None] = []

    def broken(process: ManagedProcess) -> bool:
        pids.append(process.pid)
        raise ValueError("check broke")

    server = tiny(healthy=broken)
    with pytest.raises(ValueError, match="check broke"):
        server.start()
    assert len(pids) == 1 and pids[0] is not None
    assert gone(pids[0]) and not server.running


def test_pause_makes_it_unresponsive_and_resume_brings_it_back(tiny: Factory) -> None:
    server = tiny().start()
    pid = server.pid

    server.pause()
    assert (server.paused, server.running, server.pid) == (True, True, pid)
    assert server in live_processes()
    # The kernel still accepts the connection; nobody reads or writes on it.
    with pytest.raises(TimeoutError):
        answers(server.port, timeout=SHORT_TIMEOUT)

    server.resume()
    assert not server.paused
    assert answers(server.port, timeout=DEFAULT_TIMEOUT)


def test_kill_and_restart_keep_the_port_and_start_a_new_process(tiny: Factory) -> None:
    server = tiny().start()
    port, first_pid = server.port, server.pid
    assert first_pid is not None

    server.kill()
    assert gone(first_pid) and (server.running, server.pid) == (False, None)
    assert not accepts_connections(port)

    assert server.restart() is server
    assert server.port == port and server.pid not in (None, first_pid)
    assert answers(port)
    assert server.log_tail(1000).count("=== naming.testing.process: starting") == 2
    assert server.log_tail(1) == f"tiny: listening on {port}"


def test_stop_sends_sigterm_to_a_child_that_exits_on_it(tiny: Factory) -> None:
    server = tiny().start()
    pid = server.pid
    assert pid is not None
    offset = server.log_offset

    server.stop()

    assert gone(pid) and not server.running
    assert server.log_tail(10, since=offset) == "tiny: SIGTERM"
    assert not accepts_connections(server.port)


def test_stop_kills_a_child_that_ignores_sigterm_after_the_grace(tiny: Factory) -> None:
    server = tiny("stubborn").start()
    pid = server.pid
    assert pid is not None

    server.stop(grace=4 * SHORT_TIMEOUT)

    assert gone(pid) and not server.running
    assert "tiny: SIGTERM" in server.run_log()  # it got the SIGTERM first, and ignored it


@pytest.mark.parametrize("how", ["stop", "kill", "close"])
def test_the_whole_process_group_goes_even_what_ignores_sigterm(tiny: Factory, how: str) -> None:
    server = tiny("family").start()
    grandchild = logged_pid(server, "grandchild pid")
    assert not gone(grandchild)

    getattr(server, how)()

    wait_until(lambda: gone(grandchild), message=f"the grandchild gone after {how}()")


def test_pause_and_resume_act_on_the_whole_process_group(tiny: Factory) -> None:
    server = tiny("family").start()
    grandchild = logged_pid(server, "grandchild pid")

    server.pause()
    wait_until(lambda: state(grandchild) in ("T", "t"), message="the grandchild stopped")
    server.resume()
    wait_until(lambda: state(grandchild) not in ("T", "t"), message="the grandchild running")
    assert answers(server.port)


def test_a_taken_port_moves_the_first_start_but_never_a_later_one(tiny: Factory) -> None:
    server = tiny()
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        thief.bind(("127.0.0.1", server.port))
        thief.listen()
        taken = server.port
        server.start()
        assert server.port != taken
        assert server.log_tail(1000).count("=== naming.testing.process: starting") == 2
    server.stop()
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        thief.bind(("127.0.0.1", server.port))
        thief.listen()
        with pytest.raises(ExitedEarlyError, match="Address already in use") as info:
            server.start()
        assert info.value.port_in_use is True
    server.start()  # its port is back: it serves there again
    assert answers(server.port)


def test_ports_given_by_the_caller_are_never_moved(tiny: Factory) -> None:
    (port,) = free_ports(1)
    server = tiny(ports=[port])
    with socket.socket() as thief:
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        thief.bind(("127.0.0.1", port))
        thief.listen()
        with pytest.raises(ExitedEarlyError) as info:
            server.start()
    assert info.value.port_in_use and server.ports == (port,)


def test_live_processes_lists_the_running_ones_in_launch_order(tiny: Factory) -> None:
    first, second, never = tiny(), tiny(), tiny()
    ours = {first, second, never}

    def live() -> list[ManagedProcess]:
        return [p for p in live_processes() if p in ours]

    assert live() == []
    second.start()
    first.start()
    assert live() == [second, first]  # by launch, not by creation
    first.pause()
    assert live() == [second, first]  # paused is still running

    first.kill()
    assert live() == [second]
    pid = second.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # dies behind the harness's back
    wait_until(lambda: live() == [], message="a child killed from outside drops out")
    assert not second.running


def test_live_processes_can_be_read_from_other_threads_while_processes_come_and_go(
    tiny: Factory,
) -> None:
    server = tiny()
    errors: list[BaseException] = []
    seen: list[int] = []
    done = threading.Event()

    def read() -> None:
        try:
            while not done.is_set() and len(seen) < 100_000:
                seen.append(len(live_processes()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read, name=f"naming-test-reader-{i}") for i in range(3)]
    for reader in readers:
        reader.start()
    try:
        for _ in range(3):
            server.start()
            server.kill()
    finally:
        done.set()
        for reader in readers:
            reader.join(DEFAULT_TIMEOUT)
    assert errors == [] and seen
    assert server not in live_processes()


def test_close_kills_even_a_paused_child_removes_its_workdir_and_is_idempotent(
    tiny: Factory,
) -> None:
    with tiny() as server:
        server.start()
        pid, workdir = server.pid, server.workdir
        assert pid is not None and (workdir / f"{server.name}.log").is_file()
        server.pause()
    server.close()

    assert gone(pid) and not workdir.exists()
    assert server not in live_processes()
    with pytest.raises(ProcessError, match=r"^process: tiny\d is closed$"):
        server.start()


def test_a_workdir_given_by_the_caller_is_kept(tiny: Factory, tmp_path: Path) -> None:
    server = tiny(workdir=tmp_path / "given").start()
    server.close()
    assert (tmp_path / "given" / f"{server.name}.log").is_file()


def test_acting_on_a_process_that_is_not_running(tiny: Factory) -> None:
    server = tiny(name="tiny")
    server.stop()
    server.kill()  # both are no-ops before a start
    with pytest.raises(ProcessError, match=r"^process: cannot pause tiny: it is not running$"):
        server.pause()
    with pytest.raises(ProcessError, match=r"^process: cannot resume tiny: it is not running$"):
        server.resume()
    server.start()
    with pytest.raises(ProcessError, match=r"^process: tiny is already running \(pid \d+\)$"):
        server.launch()
    with pytest.raises(ProcessError, match="cannot move tiny: it is running"):
        server.choose_ports()


def test_a_process_nobody_closed_is_killed_when_it_is_collected(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ManagedProcess(
        lambda p: [sys.executable, "-c", TINY, str(p.port)], healthy=healthy, name="orphan"
    ).start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None

    del server
    gc.collect()

    assert gone(pid) and not workdir.exists()
    assert f"process: killing leftover orphan (pid {pid})" in caplog.text


def test_nothing_outlives_the_interpreter_that_started_it() -> None:
    script = (
        "import sys\n"
        "from naming.testing.process import ManagedProcess, accepts_connections\n"
        "server = ManagedProcess(\n"
        "    lambda p: [sys.executable, '-c', sys.argv[1], str(p.port)],\n"
        "    healthy=lambda p: accepts_connections(p.port),\n"
        ").start()\n"
        "print(server.pid, server.workdir, flush=True)\n"
        # no close(): the interpreter exits with the server running
    )
    result = subprocess.run(
        [sys.executable, "-c", script, TINY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pid_text, workdir = result.stdout.split()
    pid = int(pid_text)
    try:
        assert gone(pid)
        assert not Path(workdir).exists()
    finally:
        if not gone(pid):  # the check failed: do not leave the server behind as well
            os.killpg(pid, signal.SIGKILL)


def test_a_failing_test_shows_the_log_of_its_process_fixture(tmp_path: Path) -> None:
    (tmp_path / "test_fails.py").write_text(
        "import sys\n"
        "import pytest\n"
        "from naming.testing.process import ManagedProcess, accepts_connections\n"
        f"TINY = {TINY!r}\n"
        "@pytest.fixture\n"
        "def server():\n"
        "    with ManagedProcess(\n"
        "        lambda p: [sys.executable, '-c', TINY, str(p.port)],\n"
        "        healthy=lambda p: accepts_connections(p.port),\n"
        "        name='tiny',\n"
        "    ) as process:\n"
        "        yield process.start()\n"
        "def test_fails(server):\n"
        "    assert False, 'failing on purpose'\n"
    )
    plugins = ["-p", "tests._etcd", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-q", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.stdout.split("failing on purpose", 1)[1]
    assert "process tiny ports [" in report
    assert "tiny: listening on " in report


def test_the_public_names_of_the_module_exist() -> None:
    from naming.testing import process

    assert sorted(process.__all__) == sorted(set(process.__all__))
    for name in process.__all__:
        assert getattr(process, name) is not None


def test_an_etcd_server_is_a_managed_process_the_leak_check_sees(etcd_private: EtcdServer) -> None:
    pid = etcd_private.pid
    assert pid is not None

    def ours() -> list[ManagedProcess]:
        return [p for p in live_processes() if p.pid == pid]

    assert len(ours()) == 1 and repr(ours()[0]).startswith("<ManagedProcess e1 running pid=")
    assert issubclass(EtcdError, ProcessError)
    etcd_private.kill()
    assert ours() == [] and etcd_private.pid is None
