"""The etcd backend's pure parts: record formats, options, backoff. No server needed here."""

from __future__ import annotations

import random

import pytest

from backends._etcd_client import REGISTER_OPTIONS, EtcdSettings, classify, settings_from
from backends._etcd_records import decode_record, encode_record
from backends._etcd_register import call_timeout
from backends._etcd_watch import prefix_end
from naming import Address, BackendUnavailableError, NamingError, TargetError, parse_target
from naming.core import Backoff


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"addr":"10.0.0.1:80","metadata":{"zone":"a"}}', Address("10.0.0.1:80", {"zone": "a"})),
        (b'{"addr":"10.0.0.1:80"}', Address("10.0.0.1:80")),
        (b"10.0.0.1:80", Address("10.0.0.1:80")),
        (b"  [::1]:80\n", Address("[::1]:80")),
        (b'"10.0.0.1:80"', Address("10.0.0.1:80")),
        (b'{"Op":0,"Addr":"10.0.0.1:80","Metadata":{"w":2}}', Address("10.0.0.1:80", {"w": 2})),
        (b'{"Op":0,"Addr":"10.0.0.1:80","Metadata":null}', Address("10.0.0.1:80")),
        (b'{"Addr":"10.0.0.1:80","Metadata":"blue"}', Address("10.0.0.1:80", {"value": "blue"})),
    ],
)
def test_decode_accepts_ours_go_zero_and_endpoints_manager_records(
    value: bytes, expected: Address
) -> None:
    assert decode_record(value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{garbage", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"name": "x"}', "neither 'addr' nor 'Addr'"),
        (b'{"addr": 5}', "not a string"),
        (b'{"addr": "10.0.0.1:80", "metadata": [1]}', "'metadata' is not a JSON object"),
        (b'{"Op": 1, "Addr": "10.0.0.1:80"}', "Op=1"),
        (b"no-port-here", "has no port"),
        (b"host:99999", "not a number from 1 to 65535"),
    ],
)
def test_decode_refuses_what_is_not_a_record_saying_why(value: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_record(value)


def test_encode_round_trips_through_decode() -> None:
    address = Address("10.0.0.1:80", {"zone": "a", "tags": ["x"], "w": 3})
    assert (
        encode_record(address)
        == '{"addr":"10.0.0.1:80","metadata":{"tags":["x"],"w":3,"zone":"a"}}'
    )
    assert decode_record(encode_record(address).encode()) == address
    assert decode_record(encode_record(Address("a:1")).encode()) == Address("a:1")


def test_settings_merge_target_options_with_keywords() -> None:
    target = parse_target("etcd://127.0.0.1:2379,127.0.0.1:22379/hello?prefix=/svc/&timeout=2.5")
    settings = settings_from(target, {"timeout": 1, "user": "root", "password": "s3cret"})
    assert settings.hosts == ("127.0.0.1:2379", "127.0.0.1:22379")
    assert settings.key_prefix == "/svc/hello/"
    assert settings.timeout == 1.0
    assert "s3cret" not in repr(settings)
    assert settings_from(parse_target("etcd:///hello"), {}).hosts == ("127.0.0.1:2379",)
    assert settings_from(parse_target("etcd:///hello"), {}).key_prefix == "/services/hello/"


@pytest.mark.parametrize(
    ("target", "options", "error", "message"),
    [
        ("etcd://h:1/s?password=x", {}, TargetError, "never in the target"),
        ("etcd://h:1/s", {"colour": "red"}, TypeError, r"unknown options \['colour'\]"),
        ("etcd://h:1/s", {"user": "root"}, ValueError, "both user and password"),
        ("etcd://h:1/s", {"cert_key": "k"}, ValueError, "both cert_key and cert_cert"),
        ("etcd://h:1/s", {"cert_key": "k", "cert_cert": "c"}, ValueError, "needs ca_cert"),
        ("etcd://h:1/s?timeout=soon", {}, ValueError, "timeout must be a number"),
        ("etcd://h:1/s", {"timeout": -1}, ValueError, "timeout must be positive"),
        ("etcd://h/s", {}, TargetError, "bad host in the target's authority"),
        ("etcd://h:1/s", {"user": 5, "password": "x"}, TypeError, "'user' must be a string"),
    ],
)
def test_bad_settings_raise_a_clear_error(
    target: str, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        settings_from(parse_target(target), options)


def test_instance_id_is_only_a_registration_option() -> None:
    with pytest.raises(TypeError, match="instance_id"):
        settings_from(parse_target("etcd://h:1/s"), {"instance_id": "x"})


def test_prefix_end_covers_the_prefix() -> None:
    assert prefix_end(b"/services/hello/") == b"/services/hello0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\0"


class _RpcError(Exception):
    def __init__(self, code: str, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> object:
        return type("Code", (), {"name": self._code})()

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (_RpcError("UNAVAILABLE", "connection refused"), True),
        (_RpcError("DEADLINE_EXCEEDED", "deadline"), True),
        (_RpcError("UNAUTHENTICATED", "etcdserver: invalid auth token"), True),
        (_RpcError("NOT_FOUND", "etcdserver: requested lease not found"), True),
        (
            _RpcError(
                "INVALID_ARGUMENT", "etcdserver: authentication failed, invalid user ID or password"
            ),
            False,
        ),
        (_RpcError("PERMISSION_DENIED", "etcdserver: permission denied"), False),
        (FileNotFoundError("no such file: ca.pem"), False),
        (ConnectionRefusedError("refused"), True),
    ],
)
def test_classify_retries_outages_and_gives_up_on_credentials(
    error: Exception, retry: bool
) -> None:
    result = classify("get", "127.0.0.1:2379", error)
    assert isinstance(result, BackendUnavailableError) is retry
    assert isinstance(result, NamingError)
    assert str(result).startswith("etcd: get on 127.0.0.1:2379 failed: ")


def test_backoff_doubles_with_jitter_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.1, 1.0, rng=random.Random(7))
    delays = [backoff.next() for _ in range(8)]
    assert all(0.08 <= d <= 1.0 for d in delays)
    assert delays[0] < 0.13 and delays[-1] >= 0.8
    backoff.reset()
    assert backoff.next() < 0.13
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


def test_settings_are_frozen() -> None:
    settings = EtcdSettings(hosts=("h:1",), service="s")
    with pytest.raises(AttributeError):
        settings.service = "t"  # type: ignore[misc]


def test_close_timeout_is_a_registration_option_and_calls_wait_less_than_the_lease() -> None:
    register = settings_from(parse_target("etcd://h:1/s?close_timeout=0.5"), {}, REGISTER_OPTIONS)
    assert register.extra["close_timeout"] == 0.5
    with pytest.raises(TypeError, match="close_timeout"):
        settings_from(parse_target("etcd://h:1/s"), {"close_timeout": 1})
    with pytest.raises(ValueError, match="close_timeout must be positive"):
        settings_from(parse_target("etcd://h:1/s"), {"close_timeout": 0}, REGISTER_OPTIONS)
    assert call_timeout(5.0, 10) == pytest.approx(10 / 3)
    assert call_timeout(5.0, 30) == 5.0
    assert call_timeout(5.0, 1) == 1.0
    assert call_timeout(0.5, 10) == 0.5
