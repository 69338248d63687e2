"""Job parameters checked and converted against the annotations of a script's ``main``.

``main(ctx, rounds: int = 5, secure: bool = False, dp: float | None = None, ...)`` says what
each parameter is; a value that does not fit is refused before any party starts, with one
line naming the parameter, the value and the expected type (``rounds='2.5': expected int``),
instead of failing inside every party or being silently truncated.

Two forms of input:

- text (``from_text=True``): what ``--param KEY=VALUE`` gives, converted by the annotation
  (``int``, ``float``, ``bool`` as true/false/yes/no/on/off/1/0, ``str`` as given, ``None`` as
  none/null, ``Literal[...]``, unions in their order, list/dict/tuple as JSON); an
  unannotated or ``Any`` parameter is JSON when it parses, else the string;
- values (``from_text=False``): Python values (a library call, a job proposal), checked:
  ``int`` takes no bool and no float, ``float`` takes an int, ``str`` takes only a string;
  a string for a number, bool, None or container is converted as text would be.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from fedcore.errors import ConfigError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


class _Mismatch(Exception):
    """The value does not fit the annotation (internal; becomes a ConfigError)."""


def convert_params(
    main: Callable[..., Any], params: Mapping[str, Any], *, from_text: bool = False
) -> dict[str, Any]:
    """``params`` converted to the types ``main`` annotates; unknown names pass unchanged.

    Raises:
        ConfigError: a value does not convert; the one-line message names the parameter,
            the value and the expected type.
    """
    hints = _annotations(main)
    converted: dict[str, Any] = {}
    for name, value in params.items():
        annotation = hints.get(name, Any)
        try:
            converted[name] = _convert(value, annotation, from_text)
        except _Mismatch:
            raise ConfigError(f"--param {name}={_show(value)}: expected {describe(annotation)}") from None
    return converted


def _annotations(main: Callable[..., Any]) -> dict[str, Any]:
    """Parameter annotations evaluated; one that cannot be evaluated counts as ``Any``."""
    with contextlib.suppress(Exception):  # a name only imported for type checkers: one by one
        return typing.get_type_hints(main)
    hints: dict[str, Any] = {}
    namespace = getattr(main, "__globals__", {})
    for name, param in inspect.signature(main).parameters.items():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, dict(namespace))  # noqa: S307 - the operator's own script
            except Exception:
                annotation = Any
        hints[name] = Any if annotation is inspect.Parameter.empty else annotation
    return hints


def _convert(value: Any, tp: Any, from_text: bool) -> Any:
    text = from_text and isinstance(value, str)
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return _json_or_string(value) if text else value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, typing.get_args(tp), from_text)
    if origin is typing.Literal:
        return _literal(value, typing.get_args(tp))
    if tp is None or tp is type(None):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        raise _Mismatch
    if tp in _SCALARS:
        return _SCALARS[tp](value, text)
    container = origin or tp
    if container in (list, tuple, dict):
        return _container(value, container, typing.get_args(tp), from_text)
    return _json_or_string(value) if text else value  # a type we do not know: as an Any


def _union(value: Any, options: tuple[Any, ...], from_text: bool) -> Any:
    if isinstance(value, str) and str in options and not from_text:
        return value  # a string value for a union that takes strings is that string, never None
    # text: "none" is None before it is the string "none", and "5" an int before the string "5"
    ordered = sorted(options, key=lambda tp: (tp is not type(None), tp is str))
    for option in ordered:
        try:
            return _convert(value, option, from_text)
        except _Mismatch:
            continue
    raise _Mismatch


def _literal(value: Any, choices: tuple[Any, ...]) -> Any:
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return choice
        if isinstance(value, str) and value == _text(choice):
            return choice
    raise _Mismatch


def _text(choice: Any) -> str:
    if isinstance(choice, bool):
        return "true" if choice else "false"
    return "none" if choice is None else str(choice)


def _to_bool(value: Any, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Mismatch


def _to_int(value: Any, text: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            raise _Mismatch from None
    raise _Mismatch


def _to_float(value: Any, text: bool) -> float:
    if isinstance(value, bool):
        raise _Mismatch
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Mismatch from None
    else:
        raise _Mismatch
    if not math.isfinite(number):
        raise _Mismatch
    return number


def _to_str(value: Any, text: bool) -> str:
    if isinstance(value, str):
        return value
    raise _Mismatch


_SCALARS: dict[Any, Callable[[Any, bool], Any]] = {
    bool: _to_bool,
    int: _to_int,
    float: _to_float,
    str: _to_str,
}


def _container(value: Any, kind: type, args: tuple[Any, ...], from_text: bool) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _Mismatch from None
    if kind is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        if len(args) == 2:
            return {_convert(k, args[0], True): _convert(v, args[1], False) for k, v in value.items()}
        return value
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise _Mismatch
        return tuple(_convert(v, tp, False) for v, tp in zip(value, args, strict=True))
    item = args[0] if args else Any
    items = [_convert(v, item, False) for v in value]
    return tuple(items) if kind is tuple else items


def _json_or_string(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def describe(tp: Any) -> str:
    """A reader's name for an annotation: ``int``, ``float | None``, ``one of 'iid', 'dirichlet'``."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_member(t) for t in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if tp is None or tp is type(None):
        return "None"
    if tp is bool:
        return "bool (true/false)"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _member(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return " | ".join(repr(c) for c in typing.get_args(tp))
    return describe(tp)


def _show(value: Any) -> str:
    """The value as the user typed it, shortened: never a whole pasted file in one line."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    text = text if len(text) <= 60 else text[:57] + "..."
    return repr(text) if isinstance(value, str) else text
