"""``Value``: what a frozen, slotted dataclass gives (construction, defaults, equality, hash,
repr, replace, immutability, copy and pickle), without importing dataclasses."""

from __future__ import annotations

import copy
import pickle

import pytest

from pyrkt.model.values import FrozenInstanceError, Value, field


class Point(Value):
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)


class Options(Value, frozen=False):
    name: str = "default"
    items: list[str] = field(default_factory=list)


class Point3(Point):
    z: int = 0


def test_arguments_are_taken_by_position_or_keyword_in_annotation_order() -> None:
    assert (Point(1, 2).x, Point(1, 2).y) == (1, 2)
    assert (Point(y=5, x=4).x, Point(y=5, x=4).y) == (4, 5)
    assert Point(1).y == 0


def test_default_factory_gives_each_instance_its_own_value() -> None:
    a, b = Point(1), Point(2)
    a.tags.append("t")
    assert b.tags == []


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((), {}, "missing required argument: 'x'"),
    ((1,), {"x": 2}, "multiple values for argument 'x'"),
    ((1,), {"w": 2}, "unexpected keyword argument 'w'"),
    ((1, 2, [], "", 5), {}, "takes 4 positional arguments but 5 were given"),
])
def test_wrong_arguments_are_a_type_error(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)  # type: ignore[arg-type]


def test_equality_and_hash_cover_compared_fields_only() -> None:
    assert Point(1, 2, note="a") == Point(1, 2, note="b")
    assert Point(1, 2) != Point(1, 3)
    assert hash(Point(1, 2, (), "a")) == hash(Point(1, 2, (), "b"))  # type: ignore[arg-type]
    assert Point(1) != Point3(1)
    assert Point(1) != (1, 0, [], "")


def test_repr_reads_like_a_dataclass() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags=[], note='')"


def test_fields_cannot_be_assigned_or_deleted() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.other = 1  # type: ignore[attr-defined]
    assert p.x == 1


def test_replace_returns_a_changed_copy() -> None:
    p = Point(1, 2, ["a"])
    q = p.replace(y=3)
    assert (q.x, q.y, q.tags) == (1, 3, ["a"])
    assert p.y == 2
    with pytest.raises(TypeError, match="'w'"):
        p.replace(w=1)


def test_a_mutable_value_can_be_assigned_and_is_not_hashable() -> None:
    o = Options()
    o.name = "x"
    assert o == Options(name="x")
    with pytest.raises(TypeError):
        hash(o)


def test_subclass_fields_follow_the_base_fields() -> None:
    p = Point3(1, 2, [], "", 3)
    assert (p.x, p.y, p.z) == (1, 2, 3)
    assert repr(p) == "Point3(x=1, y=2, tags=[], note='', z=3)"
    with pytest.raises(FrozenInstanceError):
        p.z = 1  # type: ignore[misc]


def test_values_copy_and_pickle() -> None:
    p = Point(1, 2, ["a"], "n")
    for q in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q == p and q.note == "n"


def test_instances_have_slots_not_a_dict() -> None:
    assert not hasattr(Point(1), "__dict__")


def test_a_field_without_default_after_one_with_default_is_refused() -> None:
    with pytest.raises(TypeError, match="non-default field 'b'"):
        class Bad(Value):
            a: int = 0
            b: int
