"""pytest plugin: the conformance suite of a naming backend (docs/plugins.md, "Run the conformance
suite on your backend").

It is activated, never installed by an entry point, with one line in the backend's conftest.py::

    pytest_plugins = ["naming.testing.conformance"]

The backend's tests then give it two things: a :class:`RegistryDriver` subclass, which writes
records through a path of its own and declares its ``capabilities``; and a fixture named
``naming_registry_driver`` that returns one, fresh for each check. A test module subclasses
:class:`BackendConformance` with ``driver_class`` set to that driver class: every check of the
suite becomes a test of that class. A check that needs a capability the driver lacks is not
collected at all, and the terminal summary ("naming conformance") lists, per class, each check
with its outcome and each one left out with the reason. ``check_needs(request)`` tells a driver
fixture which capabilities the running check uses (to start a private server only for outages).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import pytest

pytest.register_assert_rewrite("naming.testing._conformance_checks")

from ._conformance_checks import (  # noqa: E402  (after the rewrite hook, for assertion messages)
    CHECK_ATTRIBUTE as _CHECK_ATTRIBUTE,
)
from ._conformance_checks import BackendConformance, CheckSpec, check_needs  # noqa: E402
from ._conformance_driver import CAPABILITIES, GARBAGE, RegistryDriver  # noqa: E402

__all__ = [
    "CAPABILITIES",
    "GARBAGE",
    "BackendConformance",
    "RegistryDriver",
    "check_needs",
    "naming_registry_driver",
]

pytest_plugins = ["naming.testing.leaks"]


@dataclass
class _Suite:
    """What the summary tells about one subclass of BackendConformance."""

    driver: type[RegistryDriver]
    collected: list[str] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)  # check -> why
    outcomes: dict[str, str] = field(default_factory=dict)  # check -> passed / failed / error


@dataclass
class _Record:
    suites: dict[str, _Suite] = field(default_factory=dict)  # by class node id


_RECORD = pytest.StashKey[_Record]()


@pytest.fixture
def naming_registry_driver() -> RegistryDriver:
    """Stands in until the backend's tests define it; fails, saying what to write."""
    pytest.fail(
        "conformance: define a fixture named naming_registry_driver that returns your "
        "RegistryDriver (docs/plugins.md, 'Run the conformance suite on your backend')",
        pytrace=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORD] = _Record()


def _suite_class(collector: pytest.Collector) -> type[BackendConformance] | None:
    if not isinstance(collector, pytest.Class):
        return None
    cls = collector.obj
    if not isinstance(cls, type) or cls is BackendConformance:
        return None
    return cls if issubclass(cls, BackendConformance) else None


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> list[pytest.Item] | None:
    """Leave out the checks that the class's driver cannot run; let pytest collect the others."""
    cls = _suite_class(collector)
    spec = getattr(obj, _CHECK_ATTRIBUTE, None)
    if cls is None or not isinstance(spec, CheckSpec):
        return None
    driver = getattr(cls, "driver_class", None)
    if not (isinstance(driver, type) and issubclass(driver, RegistryDriver)):
        raise TypeError(
            f"conformance: {cls.__name__} must set driver_class to a RegistryDriver subclass"
        )
    suite = collector.config.stash[_RECORD].suites.setdefault(collector.nodeid, _Suite(driver))
    if spec.applies(driver.capabilities):
        suite.collected.append(name)
        return None
    suite.left_out[name] = spec.reason(driver.capabilities)
    return []


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        parent = item.parent
        suites = item.config.stash[_RECORD].suites
        suite = suites.get(parent.nodeid) if parent is not None else None
        if suite is not None and isinstance(item, pytest.Function):
            suite.outcomes[item.originalname] = "deselected"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Note the outcome of every phase of a check for the summary."""
    report: pytest.TestReport = yield
    parent = item.parent
    suite = item.config.stash[_RECORD].suites.get(parent.nodeid) if parent is not None else None
    if suite is not None and isinstance(item, pytest.Function):
        name = item.originalname
        if name in suite.collected:
            if report.failed:
                suite.outcomes[name] = "failed" if report.when == "call" else "error"
            elif report.skipped:
                suite.outcomes.setdefault(name, "skipped")
            elif report.when == "call":
                suite.outcomes.setdefault(name, "passed")
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    record = terminalreporter.config.stash[_RECORD]
    if not record.suites:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "naming conformance")
    for nodeid, suite in record.suites.items():
        capabilities = ", ".join(sorted(suite.driver.capabilities)) or "none"
        write(f"{nodeid}: {suite.driver.__name__} (capabilities: {capabilities})")
        for name in suite.collected:
            write(f"  {suite.outcomes.get(name, 'not run'):<13} {name}")
        for name, why in suite.left_out.items():
            write(f"  {'not collected':<13} {name} ({why})")
        ran = [
            suite.outcomes[name]
            for name in suite.collected
            if suite.outcomes.get(name, "deselected") != "deselected"
        ]
        passed = ran.count("passed")
        write(
            f"  {len(ran)} checks ran, {passed} passed, {len(ran) - passed} did not; "
            f"{len(suite.left_out)} not collected"
        )
