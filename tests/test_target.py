from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from naming import Target, TargetError, parse_target


@pytest.mark.parametrize(
    ("text", "scheme", "authority", "endpoint", "options"),
    [
        (
            "static:///10.0.0.1:50051,10.0.0.2:50051",
            "static",
            "",
            "10.0.0.1:50051,10.0.0.2:50051",
            {},
        ),
        ("manual:///anything", "manual", "", "anything", {}),
        (
            "etcd://127.0.0.1:2379,127.0.0.1:22379/hello_service?prefix=/services",
            "etcd",
            "127.0.0.1:2379,127.0.0.1:22379",
            "hello_service",
            {"prefix": "/services"},
        ),
        (
            "zk://127.0.0.1:2181/hello_service?root=/services",
            "zk",
            "127.0.0.1:2181",
            "hello_service",
            {"root": "/services"},
        ),
        (
            "consul://127.0.0.1:8500/hello_service?tag=v1&dc=dc1&passing=true",
            "consul",
            "127.0.0.1:8500",
            "hello_service",
            {"tag": "v1", "dc": "dc1", "passing": "true"},
        ),
        ("dns:///hello.example.com:50051", "dns", "", "hello.example.com:50051", {}),
        (
            "dns://127.0.0.1:5353/_grpc._tcp.hello.example.com",
            "dns",
            "127.0.0.1:5353",
            "_grpc._tcp.hello.example.com",
            {},
        ),
        ("ETCD://h:1/svc", "etcd", "h:1", "svc", {}),
        ("etcd://h:1/a%2Fb%20c?k%3D=v%26w", "etcd", "h:1", "a/b c", {"k=": "v&w"}),
        ("etcd://h:1/svc?flag", "etcd", "h:1", "svc", {"flag": ""}),
        ("etcd://h:1/svc?a=1&&b=2&", "etcd", "h:1", "svc", {"a": "1", "b": "2"}),
        ("etcd://h:1/group/svc", "etcd", "h:1", "group/svc", {}),
    ],
)
def test_parse_target_splits_the_naming_doc_form(
    text: str, scheme: str, authority: str, endpoint: str, options: dict[str, str]
) -> None:
    target = parse_target(text)
    assert (target.scheme, target.authority, target.endpoint) == (scheme, authority, endpoint)
    assert dict(target.options) == options


def test_a_target_without_scheme_is_a_dns_name() -> None:
    assert parse_target("localhost:50051") == Target("dns", "", "localhost:50051")


def test_target_hosts_split_the_authority() -> None:
    assert parse_target("etcd://a:1,b:2/svc").hosts == ["a:1", "b:2"]
    assert parse_target("static:///a:1").hosts == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "target: empty"),
        ("etcd://h:1", "missing '/' between authority and endpoint"),
        ("etcd://h:1/", "missing endpoint"),
        ("etcd://h:1/?prefix=/x", "missing endpoint"),
        ("1etcd://h/svc", "bad scheme '1etcd'"),
        ("et cd://h/svc", "whitespace or control character"),
        ("etcd://h/svc#frag", "fragments"),
        ("etcd://user:secret@h/svc", "credentials do not belong in the authority"),
        ("etcd://h/svc?a=1&a=2", "option 'a' given twice"),
        ("etcd://h/svc?=1", "has no name"),
        ("etcd://h/%ff", "endpoint is not valid percent-encoded UTF-8"),
        ("etcd://h/a%0Ab", "endpoint decodes to a control character"),
    ],
)
def test_bad_targets_raise_target_error_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(TargetError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_target(text)


def test_target_error_is_a_value_error_and_names_no_secret() -> None:
    with pytest.raises(ValueError) as raised:
        parse_target("etcd://user:secret@h/svc")
    assert isinstance(raised.value, TargetError)


def test_non_string_target_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="expected a string, got bytes"):
        parse_target(b"etcd://h/svc")  # type: ignore[arg-type]


@given(st.text())
def test_any_string_gives_a_target_or_target_error(text: str) -> None:
    try:
        target = parse_target(text)
    except TargetError:
        return
    assert isinstance(target, Target)
    assert target.endpoint


_char = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), max_codepoint=0x2FFF)
_name = st.text(_char, min_size=1)


@given(
    scheme=st.from_regex(r"[a-z][a-z0-9+.\-]{0,8}", fullmatch=True),
    authority=st.from_regex(r"[a-z0-9.:,\-]{0,20}", fullmatch=True),
    endpoint=_name,
    options=st.dictionaries(_name, st.text(_char), max_size=3),
)
def test_str_of_a_target_parses_back_to_it(
    scheme: str, authority: str, endpoint: str, options: dict[str, str]
) -> None:
    target = Target(scheme, authority, endpoint, options)
    assert parse_target(str(target)) == target


@pytest.mark.parametrize(
    "char",
    [
        "\u00a0",
        "\u2003",
        "\u3000",
        "\u2028",
        "\u2029",
        "\x85",
        "\x9f",
        "\u200b",
        "\u202e",
        "\ud800",
    ],
    ids=[
        "nbsp",
        "em-space",
        "ideographic-space",
        "line-sep",
        "para-sep",
        "nel",
        "c1",
        "zwsp",
        "rlo",
        "surrogate",
    ],
)
@pytest.mark.parametrize("where", ["endpoint", "authority", "option"])
def test_unicode_whitespace_c1_controls_and_lone_surrogates_are_refused(
    char: str, where: str
) -> None:
    text = {
        "endpoint": f"static:///a{char}b:1",
        "authority": f"etcd://h{char}:2379/svc",
        "option": f"etcd://h/svc?prefix=/a{char}",
    }[where]
    with pytest.raises(TargetError, match=rf"whitespace or control character .*U\+{ord(char):04X}"):
        parse_target(text)


@pytest.mark.parametrize("encoded", ["%C2%85", "%C2%9F"])
def test_a_c1_control_is_refused_once_decoded_too(encoded: str) -> None:
    with pytest.raises(TargetError, match="endpoint decodes to a control character"):
        parse_target(f"static:///a{encoded}b:1")


def test_other_unicode_still_parses() -> None:
    assert parse_target("static:///café:1").endpoint == "café:1"
    assert parse_target("static:///a%C2%A0b").endpoint == "a\u00a0b"  # decoded spaces are allowed
