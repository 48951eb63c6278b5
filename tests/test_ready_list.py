"""The balancer's block-structured ready list against a plain sorted list (hypothesis)."""

from __future__ import annotations

import bisect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.manual import ManualResolver
from balancers import PickerState, RoundRobin
from balancers._ready import Joined, ReadyList
from naming import Address, Update

_ops = st.lists(st.tuples(st.booleans(), st.integers(0, 300)), max_size=400)


@settings(max_examples=200, deadline=None)
@given(ops=_ops, block=st.sampled_from([2, 3, 4, 8, 256]))
def test_ready_list_matches_a_sorted_list_through_adds_and_removes(
    ops: list[tuple[bool, int]], block: int
) -> None:
    ready = ReadyList(block)
    plain: list[int] = []
    for step, (add, position) in enumerate(ops):
        if add and position not in plain:
            ready.add(position, Address(f"10.0.0.{position % 250}:{1000 + position}"))
            bisect.insort(plain, position)
        elif not add and position in plain:
            ready.remove(position)
            plain.remove(position)
        assert len(ready) == len(plain)
        if step % 7 == 0 or step == len(ops) - 1:  # freeze now and then, as get() does
            addresses, positions = ready.freeze()
            assert list(positions) == plain
            assert [int(a.addr.rsplit(":", 1)[1]) - 1000 for a in addresses] == plain
            assert len(addresses) == len(plain)
            for index in (0, len(plain) // 2, len(plain) - 1, -1):
                if plain:
                    assert positions[index] == plain[index]
            state = PickerState(addresses, positions, lambda a: None, lambda a: False)
            for probe in (-1, 0, 57, 150, 299, 301):
                assert state.index_after(probe) == bisect.bisect_right(plain, probe)


def test_joined_is_an_immutable_sequence_of_its_blocks() -> None:
    joined = Joined(((1, 2), (3,), (4, 5, 6)), (0, 2, 3, 6))
    assert list(joined) == [1, 2, 3, 4, 5, 6]
    assert joined[3] == 4 and joined[-1] == 6 and joined[1:4] == (2, 3, 4)
    assert (
        joined.bisect_right(3) == 3 and joined.bisect_right(0) == 0 and joined.bisect_right(9) == 6
    )
    with pytest.raises(IndexError):
        joined[6]


def test_round_robin_over_thousands_of_addresses_is_exact_through_churn() -> None:
    addresses = [Address(f"10.0.{i // 250}.{i % 250}:80") for i in range(3000)]
    with ManualResolver(addresses) as resolver:
        balancer = RoundRobin(resolver)
        balancer.start("manual:///big")
        notifications = balancer.notify()
        assert notifications is not None
        assert len(notifications.get(timeout=30)) == 3000
        for address in addresses:
            balancer.up(address)
        first = [balancer.get()[0] for _ in range(3000)]
        assert first == addresses  # strict rotation in list order, across many blocks
        assert all(balancer.up(a) is None for a in addresses[::7])  # already up: no new down
        for address in addresses[::7]:  # delete every 7th address, one batch each
            resolver.update([Update.delete(address)])
        expected = [a for i, a in enumerate(addresses) if i % 7]
        latest = notifications.get(timeout=30)
        while len(latest) != len(expected):
            latest = notifications.get(timeout=30)
        picks = [balancer.get()[0] for _ in range(2 * len(expected))]
        assert sorted(picks[: len(expected)], key=addresses.index) == expected
        assert picks[: len(expected)] == picks[len(expected) :]
        balancer.close()
