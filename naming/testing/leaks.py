"""pytest plugin: the ``naming_leak_check`` fixture (docs/testing.md, "The leak check").

Activate it with ``pytest_plugins = ["naming.testing.leaks"]`` in your conftest.py (the conformance
plugin activates it too). A test that asks for ``naming_leak_check`` fails at teardown when it left
a ``naming-*`` thread, a subchannel of a channel it passed to ``naming_leak_check.track()``, or a
child process running; it waits ``naming_leak_grace`` seconds (an ini option, default
``LEAK_GRACE``, 5) for them to end first. To check every test, make it autouse in your conftest.py::

    @pytest.fixture(autouse=True)
    def leak_check(naming_leak_check):
        return naming_leak_check
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._leaks import LEAK_GRACE, LeakCheck

__all__ = ["naming_leak_check"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "naming_leak_grace",
        "seconds naming_leak_check waits for threads and processes to end (default 5)",
        default=str(LEAK_GRACE),
    )


@pytest.fixture
def naming_leak_check(request: pytest.FixtureRequest) -> Iterator[LeakCheck]:
    """A :class:`naming.testing.LeakCheck` made before the test; checked after it."""
    check = LeakCheck(grace=float(request.config.getini("naming_leak_grace")))
    yield check
    found = check.wait()
    if found:
        pytest.fail(LeakCheck.describe(found), pytrace=False)
