"""The etcd record decoder on anything: it returns an Address or raises ValueError, never more.

A watcher skips what the decoder refuses, so a decoder that raises anything else (RecursionError
on deeply nested JSON, TypeError from a format's decoder) stops the watcher for good. No server.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends._etcd_records import CODEC
from naming import Address
from naming.core import RecordSkipper

TOO_DEEP = "the value is nested more than 64 levels deep"

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
_addrs = st.sampled_from(["10.0.0.1:80", "[::1]:443", "a.example:9", "bad", "", "h:0"])


def _decoded(value: bytes) -> Address | ValueError:
    """What ``decode`` gives: the address, or the ValueError; anything else fails the test."""
    try:
        return CODEC.decode(value)
    except ValueError as exc:
        return exc


def _agrees_with_decode_many(value: bytes) -> None:
    single = _decoded(value)
    skipped: list[tuple[bytes, ValueError]] = []
    many = CODEC.decode_many([(b"k", value)], lambda key, error: skipped.append((key, error)))
    if isinstance(single, Address):
        assert many == {b"k": single} and skipped == []
    else:
        assert many == {} and [(k, str(e)) for k, e in skipped] == [(b"k", str(single))]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_value_error_alike_one_by_one_and_in_bulk(
    value: bytes,
) -> None:
    _agrees_with_decode_many(value)


@given(_json, _addrs, st.sampled_from(["addr", "Addr", "endpoints", "other"]))
def test_arbitrary_json_in_each_format_decodes_or_raises_value_error(
    payload: Any, addr: str, form: str
) -> None:
    records: list[Any] = [
        payload,
        {"addr": addr, "metadata": payload},
        {"Op": payload, "Addr": addr, "Metadata": payload},
        {"endpoints": [f"grpc://{addr}", payload], "metadata": payload, "version": payload},
        {form: payload},
    ]
    for record in records:
        for text in (json.dumps(record), json.dumps(record, separators=(",", ":"))):
            _agrees_with_decode_many(text.encode())


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    if kind == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"a":[' * depth + "]}" * depth  # both, alternating


# Each template with the levels it adds around the nested value.
_RECORDS = {
    "bare": ("{x}", 0),
    "ours": ('{{"addr":"10.0.0.1:80","metadata":{{"m":{x}}}}}', 2),
    "ours, spaced": ('{{"addr": "10.0.0.1:80", "metadata": {{"m": {x}}}}}', 2),
    "endpoints-manager op": ('{{"Op":{x},"Addr":"10.0.0.1:80"}}', 1),
    "endpoints-manager metadata": ('{{"Op":0,"Addr":"10.0.0.1:80","Metadata":{x}}}', 1),
    "kratos": ('{{"endpoints":["grpc://10.0.0.1:80",{x}],"metadata":{{"m":{x}}}}}', 2),
}
_READABLE = {"ours", "ours, spaced", "endpoints-manager metadata", "kratos"}


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=1, max_value=20_000),
    st.sampled_from(["list", "object", "mixed"]),
    st.sampled_from(sorted(_RECORDS)),
)
def test_json_nested_deeper_than_64_levels_is_refused_and_shallower_json_is_read(
    depth: int, kind: str, record: str
) -> None:
    template, around = _RECORDS[record]
    value = template.format(x=_nested(depth, kind)).encode()
    _agrees_with_decode_many(value)
    result = _decoded(value)
    levels = around + depth * (2 if kind == "mixed" else 1)
    if levels > 64:
        assert isinstance(result, ValueError) and str(result) == TOO_DEEP
    elif record in _READABLE:
        assert isinstance(result, Address) and result.addr == "10.0.0.1:80"


@pytest.mark.parametrize("depth", [600, 1200, 100_000])
def test_a_skipper_skips_a_deep_value_with_one_warning_and_keeps_going(
    depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    skipper: RecordSkipper[str] = RecordSkipper("etcd", CODEC, logger=logging.getLogger("t"))
    deep = _RECORDS["ours"][0].format(x=_nested(depth, "object"))
    with caplog.at_level(logging.WARNING, logger="t"):
        assert skipper.decode("k", deep) is None
        assert skipper.decode("k", "[" * depth + "]" * depth) is None
        assert skipper.decode_many([("k", deep.encode()), ("j", b"10.0.0.2:80")]) == {
            "j": Address("10.0.0.2:80")
        }
    assert [r.getMessage() for r in caplog.records] == [f"etcd: skipping record k: {TOO_DEEP}"]


def test_a_huge_bad_value_is_quoted_short_in_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    skipper: RecordSkipper[str] = RecordSkipper("etcd", CODEC, logger=logging.getLogger("t"))
    with caplog.at_level(logging.WARNING, logger="t"):
        assert skipper.decode("k", "x" * 1_000_000) is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("etcd: skipping record k: address 'xxx")
    assert message.endswith(" characters)") and len(message) < 300
