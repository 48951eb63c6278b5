"""Without dnspython, a named DNS server and SRV fail at the call with the install hint, and the
system-resolver forms (``localhost:PORT``) go on working."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a child: dns must be missing before anything imports it, and this process has it.
CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["dns"] = sys.modules["dns.resolver"] = None  # importing them raises ImportError

    import naming

    for target in ("dns://127.0.0.1:9/hello.example.com:80", "dns:///_grpc._tcp.example.com"):
        try:
            naming.resolve(target).close()
        except Exception as exc:
            print(f"{type(exc).__name__}: {exc}")
        else:
            print("returned")
    with naming.resolve("localhost:80") as watcher:
        print(sorted(update.addr for update in watcher.next(timeout=10)))
    print("dns" in sys.modules and sys.modules["dns"] is not None)
    """
)

HINT = (
    "dns: a named DNS server and SRV need the dns.resolver module (ModuleNotFoundError: import of "
    "dns.resolver halted; None in sys.modules); pip install 'grpc-naming[dns]'"
)


def test_a_named_server_and_srv_need_the_extra_and_localhost_does_not() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[:2] == [f"MissingDependencyError: {HINT}"] * 2, lines
    assert "127.0.0.1:80" in lines[2], lines
    assert lines[3] == "False"
