"""BackendConformance: the checks of the conformance suite, as a test class a backend subclasses.

Each check is a ``test_*`` method marked with :func:`check`, which names the capabilities it needs
(and, rarely, the ones it must not have). The plugin in :mod:`naming.testing.conformance` leaves out
the checks the driver cannot run at collection time; the method names are the check names.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pytest

import naming
from naming.core import (
    Address,
    NamingError,
    Registration,
    TargetError,
    Update,
    Watcher,
    WatcherClosedError,
    parse_target,
)

from ._conformance_driver import CAPABILITIES, RegistryDriver
from ._conformance_follow import Follower
from ._leaks import LeakCheck
from ._wait import DEFAULT_TIMEOUT, SHORT_TIMEOUT

__all__ = ["CHECK_ATTRIBUTE", "BackendConformance", "CheckSpec", "check", "check_needs"]

F = TypeVar("F", bound=Callable[..., None])

CHECK_ATTRIBUTE = "_naming_conformance_check"
PLUGIN = "naming.testing.conformance"
UNKNOWN_OPTION = "conformance_no_such_option"

# Addresses in records are never dialled; they are loopback anyway.
A1, A2, A3, A4, A5 = (f"127.0.0.1:{port}" for port in range(10001, 10006))


@dataclass(frozen=True)
class CheckSpec:
    """The capabilities a check needs, and those a driver must not have for it to apply."""

    needs: frozenset[str]
    lacks: frozenset[str]

    def applies(self, capabilities: frozenset[str]) -> bool:
        return self.needs <= capabilities and not self.lacks & capabilities

    def reason(self, capabilities: frozenset[str]) -> str:
        """Why the check does not apply to a driver with ``capabilities``."""
        missing = sorted(self.needs - capabilities)
        if missing:
            return "needs " + ", ".join(missing)
        return "only for drivers without " + ", ".join(sorted(self.lacks & capabilities))


def check(*needs: str, lacks: tuple[str, ...] = ()) -> Callable[[F], F]:
    """Mark a method of BackendConformance as a check that needs ``needs``."""
    unknown = sorted({*needs, *lacks} - set(CAPABILITIES))
    if unknown:
        raise ValueError(f"conformance: unknown capabilities {unknown}")

    def mark(function: F) -> F:
        setattr(function, CHECK_ATTRIBUTE, CheckSpec(frozenset(needs), frozenset(lacks)))
        return function

    return mark


def check_needs(request: pytest.FixtureRequest) -> frozenset[str]:
    """The capabilities the running check needs (empty outside the suite); for driver fixtures."""
    function = getattr(request, "function", None)
    spec = getattr(function, CHECK_ATTRIBUTE, None)
    return spec.needs if isinstance(spec, CheckSpec) else frozenset()


def add(addr: str, metadata: Mapping[str, Any] | None = None) -> Update:
    return Update.add(Address(addr, metadata))


def delete(addr: str, metadata: Mapping[str, Any] | None = None) -> Update:
    return Update.delete(Address(addr, metadata))


class BackendConformance:
    """Subclass as ``Test<Backend>Conformance`` with ``driver_class`` set to your RegistryDriver.

    The fixture ``naming_registry_driver`` must return an instance of ``driver_class`` for each
    check. Every check also runs the leak check (``naming_leak_check``): no thread of ours, no
    watcher or registration thread, may outlive the check.
    """

    driver_class: ClassVar[type[RegistryDriver]]
    driver: RegistryDriver

    @pytest.fixture
    def _naming_conformance_plugin(self, request: pytest.FixtureRequest) -> None:
        """Fails first, with what to write, when the plugin is not active."""
        if not request.config.pluginmanager.has_plugin(PLUGIN):
            pytest.fail(
                f"conformance: add pytest_plugins = [{PLUGIN!r}] to your conftest.py",
                pytrace=False,
            )

    @pytest.fixture(autouse=True)
    def _naming_conformance(
        self,
        _naming_conformance_plugin: None,
        naming_leak_check: LeakCheck,  # before the driver: checked once the driver is closed
        naming_registry_driver: RegistryDriver,
    ) -> Iterator[None]:
        # Parameters, not getfixturevalue(): pytest then sets up the session fixtures the driver
        # needs before the leak check looks at what runs, instead of in the middle of the check.
        if not isinstance(naming_registry_driver, self.driver_class):
            pytest.fail(
                f"conformance: naming_registry_driver gave a "
                f"{type(naming_registry_driver).__name__}, not the {self.driver_class.__name__} "
                f"that {type(self).__name__} declares",
                pytrace=False,
            )
        self.driver = naming_registry_driver
        self._opened: list[Watcher | Registration] = []
        yield
        for item in reversed(self._opened):
            item.close()

    # -- helpers -------------------------------------------------------------------------------

    def follow(self) -> Follower:
        """A follower of a new watcher of the driver's target (closed after the check)."""
        watcher = naming.resolve(self.driver.target(), **self.driver.resolve_options)
        self._opened.append(watcher)
        return Follower(watcher)

    def register(
        self, addr: str, metadata: Mapping[str, Any] | None = None, *, ttl: float = 10.0
    ) -> Registration:
        registration = naming.register(
            self.driver.target(), addr, metadata, ttl=ttl, **self.driver.register_options
        )
        self._opened.append(registration)
        return registration

    def _resolving(self, target: str) -> Callable[[], Watcher]:
        return lambda: naming.resolve(target, **self.driver.resolve_options)

    def refused(self, error: type[Exception], call: Callable[[], object], what: str) -> None:
        """``call()`` raises ``error``; whatever it returned instead is closed, then the check fails."""
        try:
            made = call()
        except error:
            return
        close = getattr(made, "close", None)
        if callable(close):
            close()
        pytest.fail(f"conformance: {what} did not raise {error.__name__}")

    # -- every backend -------------------------------------------------------------------------

    @check()
    def test_first_next_is_the_whole_snapshot_as_adds(self) -> None:
        for instance, addr in (("a", A1), ("b", A2), ("c", A3)):
            self.driver.put(instance, addr)
        follower = self.follow()
        follower.same(follower.first(), add(A1), add(A2), add(A3))
        follower.quiet()  # nothing changed: next() returns [] only at its timeout

    @check()
    def test_close_from_another_thread_wakes_a_blocked_next(self) -> None:
        self.driver.put("a", A1)
        follower = self.follow()
        follower.first()
        outcome: list[object] = []
        entered = threading.Event()

        def consume() -> None:
            entered.set()
            try:
                outcome.append(follower.watcher.next(timeout=3 * DEFAULT_TIMEOUT))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=consume, name="naming-conformance-next", daemon=True)
        thread.start()
        assert entered.wait(DEFAULT_TIMEOUT)
        time.sleep(SHORT_TIMEOUT)  # let next() block
        follower.watcher.close()
        thread.join(DEFAULT_TIMEOUT)
        assert not thread.is_alive(), "conformance: close() did not wake the blocked next()"
        assert len(outcome) == 1, outcome
        assert isinstance(outcome[0], WatcherClosedError), (
            f"conformance: the woken next() gave {outcome[0]!r}, not WatcherClosedError"
        )

    @check()
    def test_next_after_close_raises_watcher_closed_error(self) -> None:
        self.driver.put("a", A1)
        never_read = self.follow().watcher
        never_read.close()
        with pytest.raises(WatcherClosedError):
            never_read.next(timeout=SHORT_TIMEOUT)
        follower = self.follow()
        follower.first()
        follower.watcher.close()
        follower.watcher.close()  # idempotent
        for timeout in (0, SHORT_TIMEOUT, None):
            with pytest.raises(WatcherClosedError):
                follower.watcher.next(timeout=timeout)
        assert list(follower.watcher) == [], "conformance: iterating a closed watcher yields"

    @check()
    def test_bad_targets_raise_target_error(self) -> None:
        self.driver.put("a", A1)
        good = parse_target(self.driver.target())
        rest = str(good).split("://", 1)[1].split("/", 1)[1]
        generic = [
            f"{good.scheme}://{good.authority}/",  # no endpoint
            f"{good}#fragment",
            f"{good.scheme}://user:secret@{good.authority or 'host'}/{rest}",
        ]
        for bad in [*generic, *self.driver.bad_targets]:
            self.refused(TargetError, self._resolving(bad), f"resolve({bad!r})")

    @check()
    def test_an_unknown_option_raises_type_error(self) -> None:
        self.driver.put("a", A1)
        options = {**self.driver.resolve_options, UNKNOWN_OPTION: 1}
        self.refused(
            TypeError,
            lambda: naming.resolve(self.driver.target(), **options),
            f"resolve(..., {UNKNOWN_OPTION}=1)",
        )

    @check(lacks=("register",))
    def test_register_is_refused_with_a_naming_error(self) -> None:
        self.driver.put("a", A1)
        self.refused(
            NamingError,
            lambda: naming.register(self.driver.target(), A2, **self.driver.register_options),
            "register() on a backend without registration",
        )

    # -- updates -------------------------------------------------------------------------------

    @check("updates")
    def test_later_next_calls_return_only_the_deltas(self) -> None:
        follower = self.follow()
        assert follower.first() == [], "conformance: an empty service must resolve to []"
        self.driver.put("a", A1)
        follower.expect(add(A1))
        self.driver.put("b", A2)
        follower.expect(add(A2))
        self.driver.delete("a")
        follower.expect(delete(A1))
        self.driver.put("b", A3)  # the record moved to another address
        follower.expect(delete(A2), add(A3))
        self.driver.delete("b")
        follower.expect(delete(A3))
        follower.quiet()

    @check("updates")
    def test_two_records_of_one_address_are_one_address(self) -> None:
        self.driver.put("a", A1)
        self.driver.put("b", A1)
        follower = self.follow()
        follower.same(follower.first(), add(A1))
        self.driver.delete("a")
        follower.quiet()  # b still holds the address
        self.driver.delete("b")
        follower.expect(delete(A1))

    @check("updates", "metadata")
    def test_metadata_reaches_the_watcher_and_a_change_replaces_the_address(self) -> None:
        first = {"zone": "z1", "weight": 3, "tags": ["a", "b"], "nested": {"k": "v"}}
        self.driver.put("a", A1, first)
        follower = self.follow()
        follower.same(follower.first(), add(A1, first))
        self.driver.put("a", A1, {"zone": "z2"})
        follower.expect(delete(A1, first), add(A1, {"zone": "z2"}))

    # -- foreign and garbage records ------------------------------------------------------------

    @check("raw")
    def test_garbage_in_the_snapshot_is_skipped_and_the_rest_resolve(self) -> None:
        self.driver.put("a", A1)
        for number, value in enumerate(self.driver.garbage):
            self.driver.put_raw(f"junk{number}", value)
        self.driver.put("b", A2)
        follower = self.follow()
        follower.same(follower.first(), add(A1), add(A2))

    @check("raw", "updates")
    def test_garbage_after_the_snapshot_is_skipped_and_the_rest_resolve(self) -> None:
        self.driver.put("a", A1)
        follower = self.follow()
        follower.first()
        for number, value in enumerate(self.driver.garbage):
            self.driver.put_raw(f"junk{number}", value)
        self.driver.put("b", A2)
        follower.expect(add(A2))  # the garbage before it changed nothing
        self.driver.put_raw("a", self.driver.garbage[0])
        follower.expect(delete(A1))  # a record that turned into garbage no longer resolves
        self.driver.put("a", A3)
        follower.expect(add(A3))

    # -- registration --------------------------------------------------------------------------

    @check("register", "updates")
    def test_one_record_per_live_registration(self) -> None:
        follower = self.follow()
        follower.first()
        first = self.register(A1)
        follower.expect(add(A1))
        second = self.register(A1)  # the same instance again: still one record
        follower.quiet()
        first.close()
        second.close()
        follower.wait_for([])
        follower.quiet()
        assert first.closed and second.closed

    @check("register", "updates")
    def test_closing_a_registration_removes_its_record(self) -> None:
        metadata = {"zone": "z1"} if "metadata" in self.driver.capabilities else None
        follower = self.follow()
        follower.first()
        registration = self.register(A2, metadata)
        states = [registration.closed]
        follower.expect(add(A2, metadata))
        registration.close()
        follower.expect(delete(A2, metadata))
        states.append(registration.closed)
        assert states == [False, True], f"conformance: Registration.closed was {states}"
        registration.close()  # idempotent
        follower.quiet()

    @check("register", "updates")
    def test_pause_takes_the_record_out_and_resume_puts_it_back(self) -> None:
        follower = self.follow()
        follower.first()
        registration = self.register(A1)
        follower.expect(add(A1))
        registration.pause()
        follower.expect(delete(A1))
        registration.resume()
        follower.expect(add(A1))
        registration.close()
        follower.expect(delete(A1))

    @check("register")
    def test_register_with_an_unknown_option_raises_type_error(self) -> None:
        options = {**self.driver.register_options, UNKNOWN_OPTION: 1}
        self.refused(
            TypeError,
            lambda: naming.register(self.driver.target(), A1, **options),
            f"register(..., {UNKNOWN_OPTION}=1)",
        )

    # -- outages and compaction ----------------------------------------------------------------

    @check("updates", "outage")
    def test_an_outage_keeps_the_last_set_and_loses_no_update(self) -> None:
        self.driver.put("a", A1)
        self.driver.put("b", A2)
        follower = self.follow()
        follower.same(follower.first(), add(A1), add(A2))
        self.driver.outage()
        follower.quiet(10 * SHORT_TIMEOUT)  # the last set is kept: no DELETE, no error
        self.driver.restore()
        self.driver.put("c", A3)
        self.driver.delete("a")
        self.driver.put("b", A4)
        follower.wait_for([A3, A4])
        follower.quiet()
        self.driver.put("d", A5)  # and the watch goes on
        follower.expect(add(A5))

    @check("register", "updates", "outage")
    def test_a_registration_outlives_an_outage(self) -> None:
        follower = self.follow()
        follower.first()
        registration = self.register(A1, ttl=3 * DEFAULT_TIMEOUT)  # no expiry can stand in
        follower.expect(add(A1))
        self.driver.outage()
        follower.quiet(10 * SHORT_TIMEOUT)
        self.driver.restore()
        follower.wait_for([A1])
        registration.close()  # works after the outage: the record goes at once
        follower.wait_for([])

    @check("updates", "compact")
    def test_compaction_does_not_disturb_a_live_watcher(self) -> None:
        follower = self.follow()
        follower.first()
        self.driver.put("a", A1)
        follower.expect(add(A1))
        self.driver.compact()
        self.driver.put("b", A2)
        follower.expect(add(A2))
        self.driver.delete("a")
        follower.expect(delete(A1))
        follower.quiet()

    @check("updates", "partition")
    def test_changes_during_a_partition_are_seen_once_it_heals(self) -> None:
        self.driver.put("a", A1)
        self.driver.put("b", A2)
        follower = self.follow()
        follower.first()
        self.driver.partition()
        self.driver.put("c", A3)
        self.driver.delete("a")
        self.driver.put("b", A4)
        follower.quiet(10 * SHORT_TIMEOUT)  # cut off: the last set is kept, nothing arrives
        self.driver.heal()
        follower.wait_for([A3, A4])
        follower.quiet()
        self.driver.put("d", A5)
        follower.expect(add(A5))

    @check("updates", "partition", "compact")
    def test_changes_missed_in_a_partition_survive_compaction(self) -> None:
        self.driver.put("a", A1)
        self.driver.put("b", A2)
        follower = self.follow()
        follower.first()
        self.driver.partition()
        self.driver.delete("a")
        self.driver.put("c", A3)
        self.driver.put("e", A5)
        self.driver.delete("e")
        self.driver.compact()  # the history the watcher would resume from is gone: it must resync
        follower.quiet(10 * SHORT_TIMEOUT)
        self.driver.heal()
        follower.wait_for([A2, A3])
        follower.quiet()
