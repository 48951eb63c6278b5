"""The backend kit's option parser (merge_options) and record codec (RecordCodec, RecordSkipper)."""

from __future__ import annotations

import logging

import pytest

from naming.core import (
    Address,
    OptionKind,
    RecordCodec,
    RecordSkipper,
    TargetError,
    encode_record,
    merge_options,
    parse_target,
    record_address,
)

A, B = Address("10.0.0.1:80"), Address("10.0.0.2:80")

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
