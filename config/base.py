"""The base of every settings model: frozen, no unknown keys, no silent type coercion.

``whole_number`` and ``at_least`` declare a ``StrictInt`` field and its description from the same bounds,
so what the loader quotes when a value is wrong ("allowed: a whole number of seconds from 0 to 300 (...)")
always says what the field accepts; ``not_below`` bounds a field by a setting declared before it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticUndefined


class StrictModel(BaseModel):
    """Frozen and strict about unknown keys; numbers and booleans are StrictInt/StrictBool (no "3", no "yes")."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _described(low: int, high: int | None, bounds: str, why: str | None, unit: str | None, default: Any) -> Any:
    of = f" of {unit}" if unit else ""
    because = f" ({why})" if why else ""
    return Field(default=default, ge=low, le=high, description=f"a whole number{of}{bounds}{because}")


def whole_number(
    low: int, high: int, why: str | None = None, *, unit: str | None = None, default: Any = PydanticUndefined
) -> Any:
    """A whole number from ``low`` to ``high``; ``why`` says what it means, ``unit`` what it counts."""
    return _described(low, high, f" from {low} to {high}", why, unit, default)


def at_least(low: int, why: str | None = None, *, unit: str | None = None, default: Any = PydanticUndefined) -> Any:
    """A whole number, at least ``low``; ``why`` says what it means, ``unit`` what it counts."""
    return _described(low, None, f", at least {low}", why, unit, default)


def not_below(field: str, sibling: str, allowed: str, *, margin: int = 0) -> Any:
    """A validator of ``field``: at least ``sibling`` (a setting declared before it) plus ``margin``.

    ``allowed`` words the error, which ends with the sibling's value: "a whole number at least min_capacity (2)".
    """

    def check(cls: type[BaseModel], value: int, info: ValidationInfo) -> int:
        floor = info.data.get(sibling)
        if floor is not None and value < floor + margin:
            raise ValueError(f"{allowed} ({floor})")
        return value

    return field_validator(field)(classmethod(check))
