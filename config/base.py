"""The base of every settings model: frozen, no unknown keys, no silent type coercion.

``whole_number`` and ``at_least`` declare a ``StrictInt`` field and its description from the same bounds,
so what the loader quotes when a value is wrong ("allowed: a whole number of seconds from 0 to 300 (...)")
always says what the field accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
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
