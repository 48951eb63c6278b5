"""Without cslab-etcd3 the etcd backend fails at the call, with the install hint, and is listed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Run in a child: etcd3 must be missing before anything imports it, and this process has it.
CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["etcd3"] = None  # import etcd3 now raises ImportError

    import naming
    import naming._cli

    calls = {
        "resolve": lambda: naming.resolve("etcd://127.0.0.1:9/svc"),
        "register": lambda: naming.register("etcd://127.0.0.1:9/svc", "10.0.0.1:80"),
        "dial": lambda: naming.dial("etcd://127.0.0.1:9/svc"),
    }
    for name, call in calls.items():
        try:
            result = call()
        except Exception as exc:
            print(f"{name}: {type(exc).__name__}: {exc}")
        else:
            print(f"{name}: returned {result!r}")
            result.close()
    print("exit", naming._cli.main(["backends"]))
    """
)

HINT = (
    "etcd: the backend needs the etcd3 module (ModuleNotFoundError: import of etcd3 halted; None in "
    "sys.modules); pip install 'grpc-naming[etcd]'"
)


def test_resolve_register_and_dial_raise_missing_dependency_and_the_cli_lists_it() -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.splitlines()
    assert lines[:3] == [
        f"resolve: MissingDependencyError: {HINT}",
        f"register: MissingDependencyError: {HINT}",
        f"dial: MissingDependencyError: {HINT}",
    ]
    (etcd,) = [line for line in lines if line.startswith("etcd ")]
    assert etcd.endswith(
        "missing: needs the etcd3 module (ModuleNotFoundError: import of etcd3 halted; None in "
        "sys.modules); pip install 'grpc-naming[etcd]'"
    )
    others = [line.split()[0] for line in lines[4:-1] if "missing:" not in line]
    assert {"manual", "static"} <= set(others)
    assert lines[-1] == "exit 0"
