"""The helloworld greeter's generated stubs (grpcio-tools, from examples/helloworld/greeter.proto),
made once per session: the ``stubs_dir`` and ``greeter`` fixtures."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "helloworld"


@pytest.fixture(scope="session")
def stubs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """greeter_pb2 and greeter_pb2_grpc, generated from the example's greeter.proto."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("greeter-stubs")
    args = [
        "grpc_tools.protoc",
        f"-I{EXAMPLE}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(EXAMPLE / "greeter.proto"),
    ]
    assert protoc.main(args) == 0
    return out


@pytest.fixture(scope="session")
def greeter(stubs_dir: Path) -> tuple[ModuleType, ModuleType]:
    sys.path.insert(0, str(stubs_dir))
    try:
        return (
            importlib.import_module("greeter_pb2"),
            importlib.import_module("greeter_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(stubs_dir))
