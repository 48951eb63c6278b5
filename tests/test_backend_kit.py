"""The backend kit in naming.core: the outage loop, option parsing, the record codec and skipper.

The loop runs against a registry made here: a revisioned set in memory with an event log, outages,
refusals and compaction, read by a RegistryWatcher subclass the way etcd's watcher reads etcd.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

import pytest

from naming.core import (
    Address,
    BackendUnavailableError,
    Backoff,
    NamingError,
    Operation,
    OptionKind,
    RecordCodec,
    RecordSkipper,
    RegistryWatcher,
    TargetError,
    Update,
    encode_record,
    merge_options,
    parse_target,
    record_address,
)
from naming.testing import wait_until
from tests.conftest import DEFAULT_TIMEOUT, SHORT_TIMEOUT

A, B, C, D = (Address(f"10.0.0.{i}:80") for i in range(1, 5))
LOOP_LOGGER = "naming.core._loop"

# -- a registry and its watcher --------------------------------------------------------------------

Event = tuple[int, Operation, Address]


class FakeRegistry:
    """A registry in memory: a set at a revision, the log of changes, outages and compaction."""

    def __init__(self, *addresses: Address) -> None:
        self._cond = threading.Condition()
        self._set = dict.fromkeys(addresses)
        self._log: list[Event] = []
        self._compacted = 0  # the log holds no event at or below this revision
        self.revision = 0
        self.error: Exception | None = None  # raised by every call while set
        self.snapshots = 0
        self.watches = 0

    def put(self, address: Address) -> None:
        self._change(Operation.ADD, address)

    def delete(self, address: Address) -> None:
        self._change(Operation.DELETE, address)

    def _change(self, op: Operation, address: Address) -> None:
        with self._cond:
            self.revision += 1
            if op is Operation.ADD:
                self._set[address] = None
            else:
                self._set.pop(address, None)
            self._log.append((self.revision, op, address))
            self._cond.notify_all()

    def compact(self) -> None:
        with self._cond:
            self._compacted = self.revision
            self._log.clear()

    def fail_with(self, error: Exception | None) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def get(self) -> tuple[list[Address], int]:
        with self._cond:
            self._check()
            self.snapshots += 1
            return list(self._set), self.revision

    def open_watch(self, after: int) -> bool:
        """False when the events after ``after`` were compacted away."""
        with self._cond:
            self._check()
            self.watches += 1
            return after >= self._compacted

    def events(self, after: int, stopping: Callable[[], bool]) -> list[Event] | None:
        """The events after ``after`` (waits for one); None when they were compacted away."""
        with self._cond:
            for _ in range(int(DEFAULT_TIMEOUT / 0.05)):
                self._check()
                if after < self._compacted:
                    return None
                found = [event for event in self._log if event[0] > after]
                if found or stopping():
                    return found
                self._cond.wait(0.05)
            return []


class FakeWatcher(RegistryWatcher):
    """What a backend writes on the kit: a snapshot, a watch from its position, an interrupt."""

    def __init__(self, registry: FakeRegistry, backoff: Backoff) -> None:
        super().__init__("fake", "svc", backoff=backoff, join_timeout=DEFAULT_TIMEOUT)
        self.registry = registry
        self.position = 0
        self.released = 0
        self.start()

    def snapshot(self) -> None:
        addresses, self.position = self.registry.get()
        self.publish(addresses)

    def watch(self) -> None:
        if not self.registry.open_watch(self.position):
            return
        self.resumed()
        while not self.stopping:
            events = self.registry.events(self.position, lambda: self.stopping)
            if events is None:
                return
            for revision, op, address in events:
                if op is Operation.ADD:
                    self.add(address)
                else:
                    self.discard(address)
                self.position = revision

    def interrupt(self) -> None:
        self.registry.wake()

    def release(self) -> None:
        self.released += 1


class RecordingBackoff(Backoff):
    """A Backoff that records every delay it hands out and every reset."""

    def __init__(self, initial: float = 0.001, maximum: float = 0.004) -> None:
        super().__init__(initial, maximum, rng=random.Random(3))
        self._cond = threading.Condition()
        self.delays: list[float] = []
        self.resets = 0

    def next(self) -> float:
        delay = super().next()
        with self._cond:
            self.delays.append(delay)
            self._cond.notify_all()
        return delay

    def reset(self) -> None:
        super().reset()
        with self._cond:
            self.resets += 1

    def wait_for_delays(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.delays) >= count, DEFAULT_TIMEOUT)


DOWN = BackendUnavailableError("fake: the registry is down")


def _loop_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOOP_LOGGER and r.levelno == level]


def _watch_thread() -> threading.Thread | None:
    found = [t for t in threading.enumerate() if t.name == "naming-fake-watch-svc"]
    return found[0] if found else None


# -- the loop --------------------------------------------------------------------------------------


def test_an_outage_keeps_the_last_set_and_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with caplog.at_level(logging.DEBUG, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(4)
        assert w.next(SHORT_TIMEOUT) == []
        assert w.addresses == [A, B]
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 2 addresses"
    ]
    assert len(_loop_records(caplog, logging.DEBUG)) >= 3
    assert w.released == 1


def test_after_an_outage_the_watch_resumes_and_delivers_what_changed_meanwhile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with caplog.at_level(logging.INFO, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(2)
        registry.put(C)
        registry.delete(A)
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.delete(A), Update.add(C)]
        assert registry.snapshots == 1  # resumed from its position, no new snapshot
        assert registry.watches >= 2
    assert _loop_records(caplog, logging.INFO) == ["fake: watching svc again"]


def test_a_lost_position_takes_a_new_snapshot_and_delivers_only_the_difference() -> None:
    registry, backoff = FakeRegistry(A, B), RecordingBackoff()
    with FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A), Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(2)
        registry.put(D)
        registry.put(C)
        registry.delete(D)
        registry.delete(A)
        registry.compact()  # the changes made while cut off are gone from the log
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.delete(A), Update.add(C)]
        assert registry.snapshots == 2
        assert w.next(SHORT_TIMEOUT) == []
        registry.put(D)  # and the watch goes on from the new snapshot's position
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(D)]


def test_a_registry_that_is_down_from_the_start_delivers_its_set_once_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    registry.fail_with(DOWN)
    with caplog.at_level(logging.WARNING, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        backoff.wait_for_delays(3)
        assert w.next(SHORT_TIMEOUT) == []
        registry.fail_with(None)
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 0 addresses"
    ]


def test_a_non_retryable_error_fails_the_watcher_and_next_raises_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    refused = NamingError("fake: permission denied")
    with caplog.at_level(logging.ERROR, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
        registry.fail_with(refused)
        with pytest.raises(NamingError) as raised:
            w.next(DEFAULT_TIMEOUT)
        assert raised.value is refused
        thread = _watch_thread()
        if thread is not None:  # the loop has failed the watcher and is returning
            thread.join(DEFAULT_TIMEOUT)
        assert _watch_thread() is None
        assert backoff.delays == []
    assert _loop_records(caplog, logging.ERROR) == ["fake: permission denied; the watcher gives up"]


def test_an_error_that_is_not_a_naming_error_fails_the_watcher_with_one() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    registry.fail_with(KeyError("oops"))
    with FakeWatcher(registry, backoff) as w, pytest.raises(NamingError) as raised:
        w.next(DEFAULT_TIMEOUT)
    assert type(raised.value) is NamingError
    assert str(raised.value) == "fake: the watcher failed: KeyError('oops')"


def test_close_during_a_long_backoff_ends_the_loop_promptly() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff(initial=600.0, maximum=600.0)
    registry.fail_with(DOWN)
    w = FakeWatcher(registry, backoff)
    backoff.wait_for_delays(1)
    thread = _watch_thread()
    assert thread is not None and thread.is_alive()
    w.close()  # joins for up to DEFAULT_TIMEOUT: a wait that close() cannot cut leaves it alive
    assert not thread.is_alive()
    assert backoff.delays[0] >= 480.0 and len(backoff.delays) == 1
    assert w.released == 1


def test_close_while_watching_ends_the_loop() -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff()
    w = FakeWatcher(registry, backoff)
    assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
    wait_until(lambda: registry.watches == 1, message="the watch opened")
    thread = _watch_thread()
    assert thread is not None
    w.close()
    assert not thread.is_alive()
    assert backoff.delays == []


def test_the_backoff_resets_after_a_success_and_a_new_outage_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry, backoff = FakeRegistry(A), RecordingBackoff(initial=0.001, maximum=0.016)
    with caplog.at_level(logging.WARNING, logger=LOOP_LOGGER), FakeWatcher(registry, backoff) as w:
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(A)]
        resets_before = backoff.resets
        registry.fail_with(DOWN)
        backoff.wait_for_delays(4)
        registry.fail_with(None)
        wait_until(lambda: backoff.resets > resets_before, message="the backoff reset")
        first_outage = len(backoff.delays)
        registry.put(B)
        assert w.next(DEFAULT_TIMEOUT) == [Update.add(B)]
        registry.fail_with(DOWN)
        backoff.wait_for_delays(first_outage + 1)
        registry.fail_with(None)
    # doubling in the first outage (jitter 0.8-1.2), from the start again in the second
    assert backoff.delays[3] > backoff.delays[0] * 4
    assert backoff.delays[first_outage] <= 0.001 * 1.2
    assert _loop_records(caplog, logging.WARNING) == [
        "fake: the registry is down; keeping the last 1 addresses",
        "fake: the registry is down; keeping the last 2 addresses",
    ]


# -- option parsing --------------------------------------------------------------------------------

ALLOWED = ("prefix", "timeout", "passing", "limit", "password", "zone")
KINDS: dict[str, OptionKind] = {
    "prefix": str,
    "timeout": float,
    "passing": bool,
    "limit": int,
    "password": str,
}


def _merge(target: str, **options: object) -> dict[str, object]:
    return merge_options(
        "kit", parse_target(target), options, ALLOWED, secrets=("password",), kinds=KINDS
    )


def test_options_from_the_target_are_converted_and_keywords_win() -> None:
    keywords = {"timeout": 0.5, "password": "s3cret"}
    merged = merge_options(
        "kit",
        parse_target("kit:///svc?prefix=/a&timeout=2.5&passing&limit=3&zone=eu"),
        keywords,
        ALLOWED,
        secrets=("password",),
        kinds=KINDS,
    )
    assert merged == {
        "prefix": "/a",
        "timeout": 0.5,
        "passing": True,
        "limit": 3,
        "zone": "eu",
        "password": "s3cret",
    }
    assert keywords == {"timeout": 0.5, "password": "s3cret"}
    assert _merge("kit:///svc?timeout=2.5")["timeout"] == 2.5
    assert _merge("kit:///svc", prefix=None) == {"prefix": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("YES", True), ("on", True), ("1", True), ("false", False), ("Off", False)],
)
def test_bool_options_read_the_usual_words(text: str, expected: bool) -> None:
    assert _merge(f"kit:///svc?passing={text}")["passing"] is expected
    assert _merge("kit:///svc", passing=expected)["passing"] is expected


def test_unknown_options_are_a_type_error_naming_them_and_the_allowed_ones() -> None:
    with pytest.raises(TypeError) as raised:
        _merge("kit:///svc?colour=red", size=3)
    assert str(raised.value) == (
        "kit: unknown options ['colour', 'size']; "
        "allowed: ['limit', 'passing', 'password', 'prefix', 'timeout', 'zone']"
    )


def test_a_secret_in_the_target_is_refused_even_when_a_keyword_gives_it_too() -> None:
    with pytest.raises(TargetError) as raised:
        _merge("kit:///svc?password=x", password="y")
    assert str(raised.value) == "kit: pass password as a keyword option, never in the target"
    with pytest.raises(TargetError, match="etcd: pass password as a keyword option"):
        merge_options(
            "etcd", parse_target("etcd:///s?password=x"), {}, ("password",), secrets=["password"]
        )


@pytest.mark.parametrize(
    ("target", "options", "error", "message"),
    [
        ("kit:///s", {"prefix": 5}, TypeError, "kit: option 'prefix' must be a string, got int"),
        ("kit:///s?timeout=soon", {}, ValueError, "kit: timeout must be a number, got 'soon'"),
        ("kit:///s", {"timeout": -1}, ValueError, "kit: timeout must be positive, got -1"),
        ("kit:///s?timeout=nan", {}, ValueError, "kit: timeout must be positive, got 'nan'"),
        ("kit:///s", {"timeout": True}, ValueError, "kit: timeout must be a number, got True"),
        ("kit:///s?passing=maybe", {}, ValueError, "kit: passing must be true or false"),
        ("kit:///s", {"passing": 1}, ValueError, "kit: passing must be true or false, got 1"),
        ("kit:///s?limit=1.5", {}, ValueError, "kit: limit must be a whole number, got '1.5'"),
        ("kit:///s", {"limit": 2.0}, ValueError, "kit: limit must be a whole number, got 2.0"),
        ("kit:///s?limit=0", {}, ValueError, "kit: limit must be positive, got '0'"),
        (
            "kit:///s",
            {"password": 1234},
            TypeError,
            "kit: option 'password' must be a string, got int",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_an_error_naming_the_option(
    target: str, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        merge_options("kit", parse_target(target), options, ALLOWED, kinds=KINDS)
    assert type(raised.value) is error
    assert str(raised.value).startswith(message)


def test_a_custom_kind_converts_and_its_errors_are_prefixed_and_secrets_never_shown() -> None:
    def port(value: object) -> int:
        number = int(str(value))
        if not 0 < number < 65536:
            raise ValueError(f"{number} is not a port")
        return number

    kinds: dict[str, OptionKind] = {"port": port, "token": float}
    target = parse_target("kit:///svc?port=8500")
    assert merge_options("kit", target, {}, ("port",), kinds=kinds) == {"port": 8500}
    with pytest.raises(ValueError) as raised:
        merge_options("kit", target, {"port": 70000}, ("port",), kinds=kinds)
    assert str(raised.value) == "kit: port: 70000 is not a port"
    with pytest.raises(ValueError) as hidden:
        merge_options(
            "kit",
            target,
            {"token": "t0ps3cret"},
            ("port", "token"),
            secrets=("token",),
            kinds=kinds,
        )
    assert str(hidden.value) == "kit: token must be a number, got <hidden>"


# -- the record codec and the skipper --------------------------------------------------------------


def _curator(data: dict[str, object]) -> Address:
    host = str(data["address"])
    return record_address(f"[{host}]:{data['port']}" if ":" in host else f"{host}:{data['port']}")


CURATOR = RecordCodec().with_format("address", _curator)  # a foreign format is one line


@pytest.mark.parametrize(
    "address",
    [Address("10.0.0.1:80"), Address("a.example:1", {"zone": "eu", "w": 3, "tags": ["x", "y"]})],
)
def test_a_record_round_trips_through_encode_and_decode(address: Address) -> None:
    text = encode_record(address)
    assert " " not in text and text.startswith('{"addr":')
    assert RecordCodec().decode(text) == address
    assert RecordCodec().decode(text.encode()) == address
    assert RecordCodec().decode_many([("k", text.encode())], _never) == {"k": address}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"addr":"10.0.0.1:80","metadata":{"zone":"a"}}', Address("10.0.0.1:80", {"zone": "a"})),
        (b'  {"metadata": null, "addr": "10.0.0.1:80"}\n', Address("10.0.0.1:80")),
        (b"10.0.0.1:80", Address("10.0.0.1:80")),
        (b"[::1]:80", Address("[::1]:80")),
        (b'"10.0.0.1:80"', Address("10.0.0.1:80")),
        (
            b'{"name":"demo","id":"inst-0","address":"10.0.0.2","port":9090,"payload":null}',
            Address("10.0.0.2:9090"),
        ),
        (b'{"name":"demo","id":"i","address":"::1","port":7}', Address("[::1]:7")),
    ],
)
def test_each_format_decodes_to_its_address(value: bytes, expected: Address) -> None:
    assert CURATOR.decode(value) == expected
    assert CURATOR.decode_many([(b"k", value)], _never) == {b"k": expected}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "the value is empty"),
        (b"\xff", "the value is not UTF-8"),
        (b"{garbage", "the value is not valid JSON"),
        (b'{"addr":"a:1"} x', "the value is not valid JSON (Extra data)"),
        (b"[1, 2]", "the JSON value is a list, not an object"),
        (b'{"name": "x"}', "the JSON object has neither 'addr' nor 'address'"),
        (b'{"addr": 5}', "the address is a int, not a string"),
        (b'{"addr":"a:1","metadata":[1]}', "'metadata' is not a JSON object"),
        (b'{"addr":"a:99999"}', "not a number from 1 to 65535"),
        (b'{"address":"h","port":"x"}', "port 'x' is not a number"),
    ],
)
def test_a_value_that_is_not_a_record_is_a_value_error_saying_why(
    value: bytes, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        CURATOR.decode(value)
    skipped: list[tuple[bytes, str]] = []
    assert CURATOR.decode_many([(b"k", value)], lambda k, e: skipped.append((k, str(e)))) == {}
    assert len(skipped) == 1 and skipped[0][0] == b"k"


def test_without_foreign_formats_the_error_names_only_ours_and_keys_must_differ() -> None:
    with pytest.raises(ValueError, match=r"^the JSON object has no 'addr'$"):
        RecordCodec().decode(b'{"Addr": "a:1"}')
    with pytest.raises(ValueError, match="two formats share a key"):
        CURATOR.with_format("address", _curator)


def test_decode_many_matches_decode_and_freezes_each_metadata_text_once() -> None:
    values = [encode_record(Address(f"10.0.0.{i}:80", {"zone": f"z{i % 2}"})) for i in range(6)]
    values += ["10.0.1.1:80", '{"addr":"10.0.1.2:80","metadata":{"a":1} }', "junk"]
    items = [(f"k{i}", v.encode()) for i, v in enumerate(values)]
    skipped: list[str] = []
    records = CURATOR.decode_many(items, lambda key, error: skipped.append(key))
    assert skipped == ["k8"]
    assert records == {key: CURATOR.decode(value) for key, value in items[:8]}
    assert records["k0"].metadata is records["k2"].metadata
    assert records["k1"].metadata is records["k3"].metadata


def test_the_skipper_warns_once_per_key_until_the_key_holds_a_record_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.kit")
    skipper: RecordSkipper[bytes] = RecordSkipper("kit", CURATOR, logger=logger)
    with caplog.at_level(logging.WARNING, logger="tests.kit"):
        assert skipper.decode(b"/s/a", b"{junk") is None
        assert skipper.decode(b"/s/a", b"still junk") is None
        assert skipper.decode(b"/s/b", b"") is None
        assert skipper.warned == {b"/s/a", b"/s/b"}
        assert skipper.decode(b"/s/a", b"10.0.0.1:80") == A
        assert skipper.decode(b"/s/a", b"{junk again") is None
        assert skipper.decode_many([(b"/s/b", b"10.0.0.2:80"), (b"/s/c", b"[")]) == {b"/s/b": B}
        assert skipper.decode(b"/s/b", b"") is None
    assert [r.getMessage() for r in caplog.records if r.name == "tests.kit"] == [
        "kit: skipping record /s/a: the value is not valid JSON (Expecting property name enclosed "
        "in double quotes)",
        "kit: skipping record /s/b: the value is empty",
        "kit: skipping record /s/a: the value is not valid JSON (Expecting property name enclosed "
        "in double quotes)",
        "kit: skipping record /s/c: the value is not valid JSON (Expecting value)",
        "kit: skipping record /s/b: the value is empty",
    ]
    assert skipper.warned == {b"/s/a", b"/s/b", b"/s/c"}


def _never(key: object, error: ValueError) -> None:
    raise AssertionError(f"skipped {key!r}: {error}")
