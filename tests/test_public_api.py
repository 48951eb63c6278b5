from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

DESIGN_NAMES = {
    "naming": [
        "Operation",
        "Update",
        "Address",
        "Target",
        "parse_target",
        "Watcher",
        "Resolver",
        "Registration",
        "resolve",
        "register",
        "available_backends",
        "available_balancers",
        "hookimpl",
        "diff",
        "NamingError",
        "TargetError",
        "UnknownSchemeError",
        "WatcherClosedError",
        "BalancerClosedError",
        "NoAddressAvailableError",
        "BackendUnavailableError",
        "DeadlineExceededError",
    ],
    "balancers": [
        "Balancer",
        "BalancerConfig",
        "RoundRobin",
        "PickFirst",
        "create",
        "Notifications",
    ],
    "backends.manual": ["ManualResolver"],
}


@pytest.mark.parametrize(
    "module_name",
    [
        "naming",
        "naming.core",
        "naming.channel",
        "balancers",
        "naming.errors",
        "naming.testing",
        "naming.testing.process",
        "naming.testing.servers",
        "naming.testing.aio",
        "naming.aio",
        "naming.channel.aio",
        "naming.testing.conformance",
    ],
)
def test_all_lists_exactly_the_public_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    package = hasattr(module, "__path__")

    def is_public(name: str, value: object) -> bool:
        if name.startswith("_") or isinstance(value, types.ModuleType):
            return False
        if name in {"annotations", "TYPE_CHECKING"}:
            return False
        if name.startswith("pytest_"):  # a pytest plugin's hooks and pytest_plugins: pytest's API
            return False
        home = getattr(value, "__module__", module_name)
        defined_here = home == module_name or (package and home.startswith(module_name + "."))
        return defined_here or not callable(value)

    public = {name for name, value in vars(module).items() if is_public(name, value)}
    assert public <= set(module.__all__), "public names missing from __all__"
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names {name}, which does not exist"


@pytest.mark.parametrize(("module_name", "names"), list(DESIGN_NAMES.items()))
def test_the_design_names_exist(module_name: str, names: list[str]) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in names if not hasattr(module, name)]
    assert not missing


def test_error_tree() -> None:
    import naming

    for name in DESIGN_NAMES["naming"]:
        if name.endswith("Error"):
            assert issubclass(getattr(naming, name), naming.NamingError)
    assert issubclass(naming.TargetError, ValueError)
    assert issubclass(naming.DeadlineExceededError, TimeoutError)


def test_importing_naming_loads_no_registry_client_and_no_grpc() -> None:
    code = (
        "import sys, naming, balancers, backends, naming.hookspecs;"
        "heavy = [m for m in ('grpc', 'etcd3', 'kazoo', 'consul', 'dns') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""
