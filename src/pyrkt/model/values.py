"""``Value``: the base of pyrkt's value classes, a cheap stand-in for ``@dataclass(frozen=True,
slots=True)`` on the hot path (`run`, `list`, `status`).

Importing ``dataclasses`` costs ~7 ms (it pulls ``inspect``, ``ast``, ``dis``, ``tokenize``) and
each decorated class ~0.5-1 ms more, because the methods are generated with ``exec``. A
``Value`` subclass gets the same behaviour from code written once, here::

    class Port(Value):
        name: str
        protocol: str = "tcp"
        extra: dict[str, str] = field(default_factory=dict, compare=False)

    p = Port("http", port=80)          # positional or keyword arguments, in annotation order
    p.replace(protocol="udp")          # a changed copy (dataclasses.replace)
    p == Port("http")                  # equality and hash over the compared fields

Instances have ``__slots__`` and are immutable (assignment raises ``FrozenInstanceError``)
unless the class is declared ``class X(Value, frozen=False)``; ``__repr__`` reads as a
dataclass's. Type checkers see a dataclass through ``dataclass_transform`` (PEP 681).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~3 ms of imports; annotations and the type checker only
    from collections.abc import Callable
    from typing import Any, Self, dataclass_transform
else:
    def dataclass_transform(**_: object):
        return lambda cls: cls


class FrozenInstanceError(AttributeError):
    """Assignment to a field of an immutable value."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    """What ``field()`` returns: a default factory and whether the field takes part in ``==``."""

    __slots__ = ("default", "default_factory", "compare")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None, compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.compare = compare


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
          compare: bool = True) -> Any:
    """A field's options, as ``dataclasses.field``: ``default_factory`` for mutable defaults,
    ``compare=False`` to leave the field out of ``==`` and ``hash``."""
    if default is not MISSING and default_factory is not None:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class _ValueMeta(type):
    """Turns the class body's annotations into slots, defaults and the field order."""

    def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, Any], *,
                frozen: bool | None = None) -> _ValueMeta:
        fields: list[str] = []
        defaults: dict[str, Any] = {}
        factories: dict[str, Callable[[], Any]] = {}
        compare: list[str] = []
        inherited_frozen = True
        for base in reversed(bases):
            if isinstance(base, _ValueMeta):
                for n in base._fields:
                    if n not in fields:
                        fields.append(n)
                defaults.update(base._defaults)
                factories.update(base._factories)
                compare += [n for n in base._compare if n not in compare]
                inherited_frozen = base._frozen
        own = [n for n, a in ns.get("__annotations__", {}).items() if not _is_classvar(a)]
        for n in own:
            if n in fields:
                raise TypeError(f"{name}: field {n!r} is already defined by a base class")
            fields.append(n)
            value = ns.pop(n, MISSING)
            keep = True
            if isinstance(value, Field):
                keep = value.compare
                if value.default_factory is not None:
                    factories[n] = value.default_factory
                value = value.default
            if value is not MISSING:
                defaults[n] = value
            if keep:
                compare.append(n)
        seen_default = False
        for n in fields:
            if n in defaults or n in factories:
                seen_default = True
            elif seen_default:
                raise TypeError(f"{name}: non-default field {n!r} follows a field with a default")
        is_frozen = inherited_frozen if frozen is None else frozen
        ns["__slots__"] = tuple(own)
        ns["__match_args__"] = tuple(fields)
        ns["_fields"] = tuple(fields)
        ns["_defaults"] = defaults
        ns["_factories"] = factories
        ns["_compare"] = tuple(compare)
        ns["_frozen"] = is_frozen
        if bases:  # the Value root itself keeps its own methods
            ns.setdefault("__setattr__", _frozen_setattr if is_frozen else object.__setattr__)
            ns.setdefault("__delattr__", _frozen_delattr if is_frozen else object.__delattr__)
            if "__eq__" not in ns and "__hash__" not in ns:
                ns["__hash__"] = Value.__hash__ if is_frozen else None
        cls = super().__new__(mcls, name, bases, ns)
        return cls

    def __init__(cls, name: str, bases: tuple[type, ...], ns: dict[str, Any], *,
                 frozen: bool | None = None) -> None:
        super().__init__(name, bases, ns)

    # set by __new__ on every class made by this metaclass
    _fields: tuple[str, ...]
    _defaults: dict[str, Any]
    _factories: dict[str, Callable[[], Any]]
    _compare: tuple[str, ...]
    _frozen: bool


def _frozen_setattr(self: Value, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Value, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


class Value(metaclass=_ValueMeta):
    """Base class of value types; see the module docstring."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        names = cls._fields
        given = len(args)
        if given > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} positional arguments but {given} were given")
        put = object.__setattr__
        for n, v in zip(names, args, strict=False):
            put(self, n, v)
        if given == len(names) and not kwargs:
            return
        defaults = cls._defaults
        take = kwargs.pop
        for n in names[given:]:
            v = take(n, MISSING)
            if v is MISSING:
                v = defaults.get(n, MISSING)
                if v is MISSING:
                    if n not in cls._factories:
                        raise TypeError(f"{cls.__name__}() missing required argument: {n!r}")
                    v = cls._factories[n]()
            put(self, n, v)
        for n in kwargs:
            if n in names:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {n!r}")
            raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {n!r}")

    def _key(self) -> tuple[Any, ...]:
        return tuple([getattr(self, n) for n in type(self)._compare])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        cls = type(self)
        inner = ", ".join([f"{n}={getattr(self, n)!r}" for n in cls._fields])
        return f"{cls.__qualname__}({inner})"

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle rebuild through __init__ (the frozen guard refuses setattr)
        return (type(self), tuple([getattr(self, n) for n in type(self)._fields]))

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, as ``dataclasses.replace``."""
        values = {n: getattr(self, n) for n in type(self)._fields}
        for n in changes:
            if n not in values:
                raise TypeError(f"{type(self).__name__}.replace() got an unexpected field {n!r}")
        values.update(changes)
        return type(self)(**values)
