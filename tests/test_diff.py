from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from naming import Address, Operation, Update, apply_updates, diff


def _as_sets(updates: list[Update]) -> tuple[set[str], set[str]]:
    adds = {u.addr for u in updates if u.op is Operation.ADD}
    deletes = {u.addr for u in updates if u.op is Operation.DELETE}
    return adds, deletes


# The table of grpc-go's TestCompileUpdate (naming/dns_resolver_test.go).
@pytest.mark.parametrize(
    ("old", "new", "adds", "deletes"),
    [
        ([], ["1"], {"1"}, set()),
        (["1"], ["1"], set(), set()),
        (["0"], ["1"], {"1"}, {"0"}),
        (["1"], ["0"], {"0"}, {"1"}),
        (["1"], ["1", "2", "3"], {"2", "3"}, set()),
        (["1", "2", "3"], ["0"], {"0"}, {"1", "2", "3"}),
        (["1", "3", "5"], ["2", "3", "6"], {"2", "6"}, {"1", "5"}),
        (["1", "1", "2"], ["1"], set(), {"2"}),
    ],
)
def test_diff_matches_the_legacy_compile_update_table(
    old: list[str], new: list[str], adds: set[str], deletes: set[str]
) -> None:
    to_addr = lambda names: [f"10.0.0.{n}:80" for n in names]  # noqa: E731
    result = diff(to_addr(old), to_addr(new))
    assert _as_sets(result) == (set(to_addr(adds)), set(to_addr(deletes)))
    assert len(result) == len(adds) + len(deletes)


def test_diff_puts_deletes_first_and_keeps_order() -> None:
    assert diff(["a:1", "b:1", "c:1"], ["d:1", "b:1", "e:1"]) == [
        Update.delete("a:1"),
        Update.delete("c:1"),
        Update.add("d:1"),
        Update.add("e:1"),
    ]


def test_diff_treats_changed_metadata_as_delete_and_add() -> None:
    assert diff([Address("a:1", {"w": 1})], [Address("a:1", {"w": 2})]) == [
        Update.delete(Address("a:1", {"w": 1})),
        Update.add(Address("a:1", {"w": 2})),
    ]


def test_apply_updates_skips_duplicate_add_and_ignores_unknown_delete() -> None:
    result = apply_updates(
        [Address("a:1")],
        [Update.add("b:1"), Update.add("a:1"), Update.delete("zz:1"), Update.add("c:1")],
    )
    assert result == [Address("a:1"), Address("b:1"), Address("c:1")]


_addresses = st.lists(
    st.builds(
        Address,
        st.sampled_from(["a:1", "b:2", "c:3", "d:4", "[::1]:5"]),
        st.one_of(st.none(), st.fixed_dictionaries({"w": st.integers(0, 2)})),
    ),
    max_size=8,
)


@given(old=_addresses, new=_addresses)
def test_applying_diff_to_old_gives_new(old: list[Address], new: list[Address]) -> None:
    result = apply_updates(dict.fromkeys(old), diff(old, new))
    assert set(result) == set(new)
    assert len(result) == len(set(new))
