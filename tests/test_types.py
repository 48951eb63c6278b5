from __future__ import annotations

import pytest

from naming import Address, FrozenMap, Operation, Update


def test_operation_values_match_go() -> None:
    assert Operation.ADD == 0
    assert Operation.DELETE == 1


def test_address_equality_includes_metadata() -> None:
    assert Address("a:1") == Address("a:1")
    assert Address("a:1", {"w": 1}) == Address("a:1", {"w": 1})
    assert Address("a:1", {"w": 1}) != Address("a:1", {"w": 2})
    assert Address("a:1", {"w": 1}) != Address("a:1")
    assert len({Address("a:1"), Address("a:1", {"w": 1}), Address("a:1", {"w": 1})}) == 2


def test_address_metadata_is_frozen_deeply_and_hashable() -> None:
    address = Address("a:1", {"tags": ["x", "y"], "zone": {"name": "z1", "ids": [1, 2]}})
    assert isinstance(address.metadata, FrozenMap)
    assert address.metadata["tags"] == ("x", "y")
    assert address.metadata["zone"]["ids"] == (1, 2)
    assert hash(address) == hash(
        Address("a:1", {"zone": {"ids": (1, 2), "name": "z1"}, "tags": ("x", "y")})
    )
    with pytest.raises(TypeError):
        address.metadata["tags"] = ()  # type: ignore[index]
    assert address.metadata.thaw() == {"tags": ["x", "y"], "zone": {"name": "z1", "ids": [1, 2]}}


def test_address_is_immutable() -> None:
    address = Address("a:1")
    with pytest.raises(AttributeError):
        address.addr = "b:2"  # type: ignore[misc]


@pytest.mark.parametrize("bad", ["", None, 5, b"a:1"])
def test_address_rejects_a_bad_addr_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="Address: addr must be a non-empty string"):
        Address(bad)  # type: ignore[arg-type]


def test_metadata_must_be_a_mapping_of_string_keys() -> None:
    with pytest.raises(TypeError, match="Address: metadata must be a mapping"):
        Address("a:1", ["w"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keys must be strings"):
        Address("a:1", {1: "x"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="unhashable bytearray"):
        Address("a:1", {"raw": bytearray(b"x")})


def test_update_carries_operation_address_and_metadata() -> None:
    update = Update(Operation.ADD, "a:1", {"w": 3})
    assert update.op is Operation.ADD
    assert update.address == Address("a:1", {"w": 3})
    assert Update(1, "a:1").op is Operation.DELETE
    assert Update.add("a:1") == Update(Operation.ADD, "a:1")
    assert Update.delete(Address("a:1", {"w": 3})) == Update(Operation.DELETE, "a:1", {"w": 3})
    assert repr(Update.add("a:1")) == "Update(ADD, 'a:1')"


def test_update_rejects_an_unknown_operation() -> None:
    with pytest.raises(ValueError, match="Update: unknown operation 7"):
        Update(7, "a:1")


def test_frozen_map_equals_plain_dicts() -> None:
    assert FrozenMap({"a": 1}) == {"a": 1}
    assert FrozenMap({"a": [1]}) == {"a": (1,)}
    assert FrozenMap() == {}
    assert repr(FrozenMap({"a": 1})) == "{'a': 1}"
