"""The conformance plugin itself: what it collects, what it reports, and that a faulty backend fails.

Each test writes a small project and runs pytest on it in a child process (pytester), so that the
plugin is loaded the way a backend's own conftest.py loads it.
"""

from __future__ import annotations

import pytest

from naming.testing.conformance import CAPABILITIES, RegistryDriver

RUN_TIMEOUT = 120  # seconds for one child pytest run

SLOPPY = '''
"""A backend with three faults: options are ignored, every ADD after the snapshot comes twice,
and next() after close() returns [] instead of raising WatcherClosedError."""

import sys
import threading
import uuid

import naming
from naming import Address, Backend, Operation, Resolver, Watcher, as_target, diff
from naming.testing.conformance import RegistryDriver

STORES = {}


class Store:
    def __init__(self):
        self.records = {}
        self.watchers = []

    def set(self, instance, address):
        old = list(dict.fromkeys(self.records.values()))
        if address is None:
            del self.records[instance]
        else:
            self.records[instance] = address
        batch = diff(old, list(dict.fromkeys(self.records.values())))
        for watcher in self.watchers:
            watcher.push(batch)


class SloppyWatcher(Watcher):
    def __init__(self, initial):
        self._cond = threading.Condition()
        self._pending = list(initial)
        self._first = True
        self._closed = False

    def push(self, batch):
        with self._cond:
            self._pending += batch + [u for u in batch if u.op is Operation.ADD]
            self._cond.notify_all()

    def next(self, timeout=None):
        with self._cond:
            if not self._first:
                self._cond.wait_for(lambda: self._pending or self._closed, timeout)
            self._first = False
            batch, self._pending = self._pending, []
            return [] if self._closed else batch

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class SloppyResolver(Resolver):
    def resolve(self, target):
        store = STORES[as_target(target).endpoint]
        watcher = SloppyWatcher(naming.Update.add(a) for a in dict.fromkeys(store.records.values()))
        store.watchers.append(watcher)
        return watcher


class SloppyBackend(Backend):
    schemes = ("sloppy",)

    def build(self, target, **options):
        return SloppyResolver()


@naming.hookimpl
def naming_register_backends(register):
    register(SloppyBackend())


naming.add_plugin(sys.modules[__name__], name="sloppy")


class SloppyDriver(RegistryDriver):
    capabilities = frozenset({"updates"})

    def __init__(self):
        self.name = uuid.uuid4().hex
        self.store = STORES[self.name] = Store()

    def target(self):
        return f"sloppy:///{self.name}"

    def put(self, instance_id, addr, metadata=None):
        self.store.set(instance_id, Address(addr, metadata))

    def delete(self, instance_id):
        self.store.set(instance_id, None)
'''

SLOPPY_TESTS = """
import pytest

from naming.testing.conformance import BackendConformance
from sloppy import SloppyDriver


@pytest.fixture
def naming_registry_driver():
    with SloppyDriver() as driver:
        yield driver


class TestSloppyConformance(BackendConformance):
    driver_class = SloppyDriver
"""

PLUGIN_CONFTEST = 'pytest_plugins = ["naming.testing.conformance"]\n'


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=RUN_TIMEOUT)


def test_a_faulty_backend_fails_exactly_the_checks_it_breaks(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(sloppy=SLOPPY, test_sloppy=SLOPPY_TESTS)
    result = run(pytester)
    result.assert_outcomes(passed=4, failed=4)  # and none skipped: left out, not skipped
    result.stdout.fnmatch_lines(
        [
            "*= naming conformance =*",
            "test_sloppy.py::TestSloppyConformance: SloppyDriver (capabilities: updates)",
            "  passed        test_first_next_is_the_whole_snapshot_as_adds",
            "  failed        test_close_from_another_thread_wakes_a_blocked_next",
            "  failed        test_next_after_close_raises_watcher_closed_error",
            "  passed        test_bad_targets_raise_target_error",
            "  failed        test_an_unknown_option_raises_type_error",
            "  passed        test_register_is_refused_with_a_naming_error",
            "  failed        test_later_next_calls_return_only_the_deltas",
            "  passed        test_two_records_of_one_address_are_one_address",
            "  not collected test_metadata_reaches_the_watcher_and_a_change_replaces_the_address"
            " (needs metadata)",
            "  not collected test_garbage_in_the_snapshot_is_skipped_and_the_rest_resolve"
            " (needs raw)",
            "*  not collected test_changes_missed_in_a_partition_survive_compaction"
            " (needs compact, partition)",
            "  8 checks ran, 4 passed, 4 did not; 12 not collected",
        ]
    )
    for reason in (
        "*conformance: ADD of 127.0.0.1:10001, which is already in the set*",
        "*conformance: resolve(..., conformance_no_such_option=1) did not raise TypeError*",
        "*conformance: the woken next() gave [], not WatcherClosedError*",
    ):
        result.stdout.fnmatch_lines([reason])


def test_without_the_fixture_or_the_plugin_the_checks_say_what_is_missing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(sloppy=SLOPPY)
    pytester.makepyfile(
        test_no_fixture="""
        from naming.testing.conformance import BackendConformance
        from sloppy import SloppyDriver

        class TestNoFixture(BackendConformance):
            driver_class = SloppyDriver
        """
    )
    without_plugin = run(pytester, "-k", "first_next")
    without_plugin.assert_outcomes(errors=1)
    without_plugin.stdout.fnmatch_lines(
        ["*conformance: add pytest_plugins = ?'naming.testing.conformance'? to your conftest.py"]
    )
    pytester.makeconftest(PLUGIN_CONFTEST)
    without_fixture = run(pytester)
    without_fixture.assert_outcomes(errors=8)
    without_fixture.stdout.fnmatch_lines(["*conformance: define a fixture named naming_regis*"])


def test_a_suite_class_without_a_driver_class_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(PLUGIN_CONFTEST)
    pytester.makepyfile(
        test_nodriver="""
        from naming.testing.conformance import BackendConformance

        class TestNoDriver(BackendConformance):
            pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*conformance: TestNoDriver must set driver_class*"])


def test_the_leak_check_fixture_fails_a_test_that_leaves_a_thread(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nnaming_leak_grace = 0.1\n")
    pytester.makeconftest(
        """
        import pytest

        pytest_plugins = ["naming.testing.leaks"]

        @pytest.fixture(autouse=True)
        def leak_check(naming_leak_check):
            return naming_leak_check
        """
    )
    pytester.makepyfile(
        test_leaky="""
        import threading

        stop = threading.Event()

        def test_leaves_a_thread():
            threading.Thread(target=stop.wait, args=(30,), name="naming-leaky", daemon=True).start()

        def test_cleans_up():
            stop.set()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_leaves_a_thread*", "*thread naming-leaky still running*"]
    )


def test_a_driver_must_override_what_its_capabilities_need() -> None:
    with pytest.raises(TypeError, match="declares 'outage' but does not override outage"):

        class NoOutage(RegistryDriver):
            capabilities = frozenset({"outage"})

    with pytest.raises(TypeError, match=r"unknown capabilities \['teleport'\]"):

        class Unknown(RegistryDriver):
            capabilities = frozenset({"teleport"})

    assert set(CAPABILITIES) == {
        "updates",
        "metadata",
        "raw",
        "register",
        "outage",
        "partition",
        "compact",
    }
