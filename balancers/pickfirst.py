"""pick_first: every RPC goes to the first connected address, and stays there while it is up."""

from __future__ import annotations

from collections.abc import Callable

from naming.core import Address, hookimpl

from ._balancer import PickInfo, Put
from ._picker import Picker, PickerBalancer, PickerState

__all__ = ["PickFirst", "PickFirstPicker"]


class PickFirstPicker(Picker):
    __slots__ = ("address",)

    def __init__(self, address: Address) -> None:
        self.address = address

    def pick(self, info: PickInfo | None = None) -> tuple[Address, Put | None]:
        return self.address, None


class PickFirst(PickerBalancer):
    """The first connected address in list order; once chosen it is kept while it stays connected,
    even when an address earlier in the list comes back (legacy pick-first over one connection)."""

    name = "pick_first"

    def build_picker(self, state: PickerState, previous: Picker | None) -> Picker:
        if isinstance(previous, PickFirstPicker) and state.is_ready(previous.address):
            return previous
        return PickFirstPicker(state.ready[0])


@hookimpl
def naming_register_balancers(register: Callable[[type[PickFirst]], None]) -> None:
    register(PickFirst)
