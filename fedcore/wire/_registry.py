"""Which types the codec carries beyond plain values, and under which wire names.

A type is registered where it is defined: a frozen dataclass with the ``message`` class
decorator (its state is derived from its fields and rebuilt through its constructor, so its
``__post_init__`` checks what a peer sent), anything else with ``register``. Decoding never
depends on what happens to be imported: a wire name the registry does not know yet makes it
import every module in ``fedcore.wire._catalog`` (once), and a name still unknown after that
is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from fedcore.errors import DecodeError
from fedcore.wire._catalog import MODULES

T = TypeVar("T")


class Layout(enum.StrEnum):
    """How a ``message`` dataclass's fields become its wire state (fixed per type: it is the format)."""

    LIST = "list"  # [field, ...] in declaration order
    TUPLE = "tuple"  # (field, ...) in declaration order
    SINGLE = "single"  # the value of the one field


@dataclass(frozen=True)
class Registered:
    cls: type
    name: str
    to_state: Callable[[Any], Any]
    from_state: Callable[[Any], Any]


_BY_TYPE: dict[type, Registered] = {}
_BY_NAME: dict[str, Registered] = {}
_catalog_loaded = False


def register(
    cls: type,
    name: str,
    *,
    to_state: Callable[[Any], Any],
    from_state: Callable[[Any], Any],
) -> None:
    """Let the codec carry instances of ``cls`` (for types that are not frozen dataclasses).

    The module calling this must be listed in ``fedcore.wire._catalog.MODULES``.

    Args:
        cls: the exact type to encode (subclasses are not matched).
        name: a stable wire name, e.g. ``"fedcore.he.PublicKey"``.
        to_state: turns an instance into a codec value (no secrets unless the caller asked).
        from_state: rebuilds an instance from that value; it must validate what it gets,
            since the value comes from another party. Any exception it raises becomes
            ``DecodeError``.
    """
    if name in _BY_NAME and _BY_NAME[name].cls is not cls:
        raise ValueError(f"wire name {name!r} is already registered for {_BY_NAME[name].cls}")
    entry = Registered(cls, name, to_state, from_state)
    _BY_TYPE[cls] = entry
    _BY_NAME[name] = entry


def message(
    name: str, *, layout: Layout | str = Layout.LIST, lists: Collection[str] = ()
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a frozen dataclass under ``name``, its state made from its fields.

    Decoding rebuilds the instance with its constructor, so the class's ``__post_init__`` is
    the one check of what a peer sent. The module using this must be listed in
    ``fedcore.wire._catalog.MODULES``.

    Args:
        name: a stable wire name, e.g. ``"fedcore.psi.Blinded"``.
        layout: the shape of the state (``Layout``); part of the wire format.
        lists: tuple-valued fields that travel as lists (and become tuples again on decode).

    Example::

        @wire.message("fedcore.psi.Reblinded", layout="tuple")
        @dataclass(frozen=True)
        class Reblinded:
            index: int
            values: bytes
    """
    shape = Layout(layout)

    def decorate(cls: type[T]) -> type[T]:
        params = getattr(cls, "__dataclass_params__", None)
        if params is None or not params.frozen:
            raise TypeError(f"wire.message needs a frozen dataclass, not {cls.__qualname__}")
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]
        unknown = set(lists) - set(names)
        if unknown or (shape is Layout.SINGLE and len(names) != 1):
            raise TypeError(f"wire.message({name!r}): bad lists {sorted(unknown)} or layout for {names}")
        to_state, from_state = _field_codec(cls, names, shape, frozenset(lists))
        register(cls, name, to_state=to_state, from_state=from_state)
        return cls

    return decorate


def _field_codec(
    cls: Callable[..., T], names: tuple[str, ...], layout: Layout, lists: frozenset[str]
) -> tuple[Callable[[T], Any], Callable[[Any], T]]:
    def out(value: T, field: str) -> Any:
        item = getattr(value, field)
        return list(item) if field in lists else item

    def back(item: Any, field: str) -> Any:
        return tuple(item) if field in lists and type(item) is list else item

    if layout is Layout.SINGLE:
        (only,) = names
        return (lambda v: out(v, only)), (lambda s: cls(back(s, only)))

    kind = list if layout is Layout.LIST else tuple

    def to_state(value: T) -> Any:
        return kind(out(value, n) for n in names)

    def from_state(state: Any) -> T:
        if type(state) is not kind or len(state) != len(names):
            raise ValueError(f"{cls.__qualname__} travels as a {kind.__name__} of {len(names)} fields")
        return cls(*(back(s, n) for s, n in zip(state, names, strict=True)))

    return to_state, from_state


def by_type(cls: type) -> Registered | None:
    """The registration of exactly ``cls``, if any."""
    return _BY_TYPE.get(cls)


def by_name(name: str) -> Registered | None:
    """The registration of wire name ``name``, importing the catalog's modules once if needed."""
    entry = _BY_NAME.get(name)
    if entry is None and not _catalog_loaded:
        load_catalog()
        entry = _BY_NAME.get(name)
    return entry


def load_catalog() -> None:
    """Import every module that registers wire types (a no-op after the first success)."""
    global _catalog_loaded
    for module in MODULES:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # a broken install, not bad input: say which module
            raise DecodeError(f"cannot load wire types: importing {module} failed ({exc})") from exc
    _catalog_loaded = True


def registered_names() -> frozenset[str]:
    """Every wire name registered so far (call ``load_catalog`` first for all of them)."""
    return frozenset(_BY_NAME)
