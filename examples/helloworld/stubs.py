"""Generate the greeter stubs on first use and import them: ``greeter_pb2, greeter_pb2_grpc = load()``.

The generated modules are not committed. They are written by ``grpc_tools.protoc`` (the
grpcio-tools package, in the ``demo`` extra) into ``_generated/`` beside this file, or into the
directory named by ``$GREETER_STUBS_DIR``, and regenerated when greeter.proto is newer than them.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
PROTO = HERE / "greeter.proto"
MODULES = ("greeter_pb2", "greeter_pb2_grpc")


def stubs_dir() -> Path:
    return Path(os.environ.get("GREETER_STUBS_DIR") or HERE / "_generated")


def generate(out: Path) -> None:
    """Run protoc for greeter.proto into ``out``; safe when several processes do it at once."""
    try:
        from grpc_tools import protoc
    except ImportError:
        sys.exit(
            "greeter: generating the stubs needs grpcio-tools: pip install 'grpc-naming[demo]'"
        )
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        args = [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"--python_out={scratch}",
            f"--grpc_python_out={scratch}",
            str(PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"greeter: protoc failed for {PROTO}")
        for module in MODULES:  # each file appears whole; the _grpc one, checked below, comes last
            os.replace(Path(scratch) / f"{module}.py", out / f"{module}.py")


def load() -> tuple[ModuleType, ModuleType]:
    """The greeter_pb2 and greeter_pb2_grpc modules, generated first if needed."""
    out = stubs_dir()
    last = out / f"{MODULES[-1]}.py"
    if not last.exists() or last.stat().st_mtime < PROTO.stat().st_mtime:
        generate(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    pb2, pb2_grpc = (importlib.import_module(name) for name in MODULES)
    return pb2, pb2_grpc


if __name__ == "__main__":
    generate(stubs_dir())
    print(f"greeter stubs written to {stubs_dir()}")
