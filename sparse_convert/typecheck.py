"""Checking option values against the types their dataclass fields or function parameters declare.

Options arrive untyped from the command line (``--method-opt levels=abc``) and from sweep files
(``lr = ["fast"]``); ``check_options`` refuses a wrong type where it enters, naming the option,
instead of letting a comparison fail later with a ``TypeError``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings", type(None): "nulls"}


def declared_types(obj: type | Callable[..., Any]) -> dict[str, Any]:
    """The resolved type hints of a class's fields or a function's parameters (empty when unresolvable)."""
    try:
        return typing.get_type_hints(obj)
    except (NameError, TypeError):
        return {}


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has type ``hint``; types this module does not know (classes, ``Any``) accept anything."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):  # a float option accepts an integer; bool is never a number here
        kinds = (int,) if hint is int else (int, float)
        return isinstance(value, kinds) and not isinstance(value, bool)
    if hint is str or hint is type(None):
        return isinstance(value, hint)
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(matches(v, item) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    """``hint`` in words: ``an integer``, ``a list of integers or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (list, tuple, Sequence):
        union = args and typing.get_origin(args[0]) in (typing.Union, types.UnionType)
        items = typing.get_args(args[0]) if union else args[:1]
        return "a list of " + " or ".join(_PLURALS.get(a, describe(a)) for a in items) if items else "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a mapping"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def check_options(values: Mapping[str, Any], hints: Mapping[str, Any], name: Callable[[str], str]) -> None:
    """Raise ``ValueError`` for the first value whose key has a declared type it does not match;
    ``name(key)`` says what the option is called in the message."""
    for key, value in values.items():
        if key in hints and not matches(value, hints[key]):
            raise ValueError(f"{name(key)} must be {describe(hints[key])}, got {value!r}")


def check_call(factory: Callable[..., Any], what: str, *args: Any, **options: Any) -> None:
    """Raise ``ValueError`` naming ``what`` when ``factory`` cannot take ``options`` (an unknown or missing
    option), found from its signature before it runs, so that a ``TypeError`` raised inside it is a bug that
    keeps its traceback, not "bad options"."""
    import inspect

    try:
        inspect.signature(factory).bind(*args, **options)
    except TypeError as err:
        raise ValueError(f"bad options for {what}: {err}") from None
