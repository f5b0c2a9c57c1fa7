"""The one error type a user sees, a single line naming the problem and the fix; and the check of a config's field
types that every config makes, so a config read from a file is refused in one line, not a traceback later."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields


class LabError(ValueError):
    """Bad input from the user (a path, a dataset, a config, a checkpoint).

    The CLI prints these as one line on stderr; anything else is a bug and keeps its traceback.
    """


def check_fields(config: object, what: str) -> None:
    """A LabError naming the first field of the dataclass ``config`` whose value is not of its declared type: an int
    (not a bool or a float), a finite number, a bool, a str, None, or a tuple of ints."""
    hints = typing.get_type_hints(type(config))
    for field in fields(config):
        hint = hints[field.name]
        value, kinds = getattr(config, field.name), typing.get_args(hint) if _union(hint) else (hint,)
        if not any(_is(value, kind) for kind in kinds):
            shown = repr(value) if len(repr(value)) < 40 else f"a {type(value).__name__}"
            raise LabError(f"invalid {what}: {field.name}={shown} is not {' or '.join(map(_name, kinds))}")


def _union(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is(value: object, kind: object) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple) and all(_is(v, int) for v in value)
    return isinstance(value, kind)


def _name(kind: object) -> str:
    return {type(None): "None", bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        kind, "a tuple of whole numbers" if typing.get_origin(kind) is tuple else getattr(kind, "__name__", str(kind))
    )
