"""Every logger of grpc-naming sits under ``naming``, so ``logging.getLogger("naming")`` controls
all of it; DEBUG shows each resolver update a balancer applies."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path

import pytest

import backends
import balancers
import naming
from backends.manual import ManualResolver
from naming import Address, Update
from naming.testing import FakeChannel

ROOT = Path(__file__).resolve().parent.parent


def _all_modules() -> list[str]:
    names = []
    for package in (naming, balancers, backends):
        names.append(package.__name__)
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not info.name.endswith(".__main__"):  # importing it runs the CLI
                names.append(info.name)
    return names


def test_every_logger_of_the_library_is_under_naming() -> None:
    for name in _all_modules():
        importlib.import_module(name)
    outside = [
        name
        for name in logging.Logger.manager.loggerDict
        if name.split(".", 1)[0] in {"balancers", "backends"}
    ]
    assert outside == []
    for package in ("balancers", "backends"):
        for path in sorted((ROOT / package).glob("*.py")):
            assert "getLogger(__name__)" not in path.read_text(), path.name


def test_debug_shows_each_resolver_update_under_the_balancers_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    resolver = ManualResolver(["10.0.0.1:1"])
    balancer = balancers.create("round_robin", resolver=resolver)
    channel = FakeChannel(balancer)
    with caplog.at_level(logging.DEBUG, logger="naming"):
        balancer.start("manual:///x")
        channel.wait_for_addresses([Address("10.0.0.1:1")])
        resolver.update([Update.add("10.0.0.2:1"), Update.delete("10.0.0.1:1")])
        channel.wait_for_addresses([Address("10.0.0.2:1")])
    channel.close()
    resolver.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "naming.balancers.round_robin"]
    assert "round_robin: resolver update: 1 ADD, 0 DELETE; 1 listed" in lines
    assert "round_robin: resolver update: 1 ADD, 1 DELETE; 1 listed" in lines


def test_one_level_on_naming_sets_every_part() -> None:
    root = logging.getLogger("naming")
    root.setLevel(logging.ERROR)
    try:
        for name in ("naming.balancers.round_robin", "naming.etcd", "naming.channel._channel"):
            assert not logging.getLogger(name).isEnabledFor(logging.WARNING), name
    finally:
        root.setLevel(logging.NOTSET)
