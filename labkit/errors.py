"""LabError, the one error a user sees (one line: the problem and the fix), and the field type check of every config."""

import math
import types
import typing
from dataclasses import fields


class LabError(ValueError):
    """Bad user input (a path, data, a config, a checkpoint): one line on stderr; any other error is a bug."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this line in a notebook instead of the traceback
        return [f"LabError: {self}"]


def check_fields(config: object, what: str) -> None:
    """A LabError naming the first field of the dataclass ``config`` whose value is not of its declared type."""
    hints = typing.get_type_hints(type(config))
    for field in fields(config):
        hint = hints[field.name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        value, kinds = getattr(config, field.name), typing.get_args(hint) if union else (hint,)
        if not any(has_type(value, kind) for kind in kinds):
            shown = repr(value) if len(repr(value)) < 40 else f"a {type(value).__name__}"
            raise LabError(f"invalid {what}: {field.name}={shown} is not {' or '.join(map(_name, kinds))}")


def has_type(value: object, kind: object) -> bool:
    """Whether ``value`` is a ``kind`` as a config takes it: a bool is no number, a float is finite, a tuple of ints."""
    if kind is type(None):
        return value is None
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if typing.get_origin(kind) is tuple:
        return isinstance(value, tuple) and all(has_type(v, int) for v in value)
    return isinstance(value, kind)


def _name(kind: object) -> str:
    return {type(None): "None", bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        kind, "a tuple of whole numbers" if typing.get_origin(kind) is tuple else getattr(kind, "__name__", str(kind))
    )
