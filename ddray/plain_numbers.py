"""Numbers in user input are numbers: no booleans read as 0/1, no infinities or NaNs.

pydantic's lax mode turns `ipc: [true]` into `[1]` and `epochs: true` into 1 (YAML reads `yes`,
`on` and `true` as booleans, so a slip gives a plausible integer), and a float field takes `.inf`
or `.nan` (`lr: .inf` trains to a diverged row that is stored for good). `PlainNumbers` is a base
model whose every number field — also inside lists, tuples, dicts and unions — refuses both, with
the item's place in the message. Fields typed `Any` (free-form knobs, plugin params) are left to
whoever reads them; nested models check themselves.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationInfo, field_validator

_SEQUENCES = (list, tuple, set, frozenset)


def _members(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: X | Y | None -> [X, Y, NoneType]; Annotated is unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for a in get_args(annotation) for m in _members(a)]
    return [annotation]


def _items(value: Any, members: list[Any]) -> Iterator[tuple[str, Any, list[Any]]]:
    """(place, item, its annotation's alternatives) for the items of a list/tuple/dict value."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            inner = []
            for m in members:
                args = get_args(m)
                if get_origin(m) in _SEQUENCES and args:
                    if get_origin(m) is tuple and args[-1] is not Ellipsis:
                        inner += _members(args[i]) if i < len(args) else []
                    else:
                        inner += _members(args[0])
            if inner:
                yield f"item {i}", item, inner
    elif isinstance(value, dict):
        inner = [a for m in members if get_origin(m) is dict and len(get_args(m)) == 2 for a in _members(get_args(m)[1])]
        if inner:
            for k, item in value.items():
                yield f"key '{k}'", item, inner


def _first_problem(value: Any, members: list[Any], check: Any, place: str = "") -> str | None:
    """The first item (depth first) that `check(item, members)` objects to, as 'place: message'."""
    if Any in members:
        return None
    message = check(value, members)
    if message:
        return f"{place}: {message}" if place else message
    for where, item, inner in _items(value, members):
        found = _first_problem(item, inner, check, f"{place}, {where}" if place else where)
        if found:
            return found
    return None


def _boolean_for_number(value: Any, members: list[Any]) -> str | None:
    if not isinstance(value, bool) or not any(m in (int, float) for m in members):
        return None
    if bool in members or any(get_origin(m) is Literal and value in get_args(m) for m in members):
        return None
    return f"{str(value).lower()} is a boolean; expected a number"


def _not_finite(value: Any, members: list[Any]) -> str | None:
    if isinstance(value, float) and not math.isfinite(value) and float in members:
        return f"{value} is not a finite number"
    return None


def _checked(model: type[BaseModel], value: Any, info: ValidationInfo, check: Any) -> Any:
    problem = _first_problem(value, _members(model.model_fields[info.field_name].annotation), check)
    if problem:
        raise ValueError(problem)
    return value


class PlainNumbers(BaseModel):
    """Base model: number fields refuse booleans (before coercion) and inf/NaN (after it)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return _checked(cls, value, info, _boolean_for_number)

    @field_validator("*", mode="after")
    @classmethod
    def _finite(cls, value: Any, info: ValidationInfo) -> Any:
        return _checked(cls, value, info, _not_finite)
