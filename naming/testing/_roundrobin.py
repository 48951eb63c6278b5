"""is_round_robin: do picks rotate over the wanted addresses, each as often per round as it is wanted?

The idea of grpc-go's ``internal/testutils`` ``IsRoundRobin``: count how often each address is wanted,
so that a weighted rotation can be checked exactly. An address listed twice in ``wanted`` must be
picked twice per round.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from naming.core import Address

__all__ = ["is_round_robin", "round_robin_mismatch"]


def round_robin_mismatch(
    wanted: Sequence[Address | str], picks: Sequence[Address | str]
) -> str | None:
    """Why ``picks`` is not a round-robin rotation over ``wanted``, or None when it is one.

    A round is ``len(wanted)`` picks. The first round must hold every address exactly as many
    times as ``wanted`` lists it, in any order; every later pick must repeat the pick one round
    before it (a last, partial round included). ``picks`` must cover at least one whole round;
    two or more show that the order repeats. Strings and Addresses compare as ``Address.of``.
    """
    want = [Address.of(a) for a in wanted]
    got = [Address.of(p) for p in picks]
    if not want:
        raise ValueError("testing: is_round_robin needs at least one wanted address")
    size = len(want)
    if len(got) < size:
        return f"{len(got)} picks do not make one round of {size}"
    left = Counter(want)
    for position, pick in enumerate(got[:size]):
        left[pick] -= 1
        if left[pick] < 0:
            wanted_times = Counter(want)[pick]
            return (
                f"pick {position} ({pick.addr}) is one more than the {wanted_times} per round "
                f"wanted; first round so far: {[p.addr for p in got[: position + 1]]}"
            )
    for position in range(size, len(got)):
        if got[position] != got[position - size]:
            return (
                f"pick {position} ({got[position].addr}) does not repeat pick {position - size} "
                f"({got[position - size].addr}) of the round before; "
                f"first round: {[p.addr for p in got[:size]]}"
            )
    return None


def is_round_robin(wanted: Sequence[Address | str], picks: Sequence[Address | str]) -> bool:
    """True when ``picks`` rotates over ``wanted``; see :func:`round_robin_mismatch` for the rules."""
    return round_robin_mismatch(wanted, picks) is None
