"""A function's settings, read once from its environment: each field of a settings dataclass from one variable.

The variable is the field's name in capitals (``ledger_table`` from ``LEDGER_TABLE``) unless ``names`` says
otherwise; a ``str`` field takes the value as it is, an ``int`` field parses it, a ``bool`` field takes ``true``
or ``false`` and nothing else. A variable without a default in ``defaults`` must be set (``KeyError`` names it):
the constructs set every one, so a missing one is a deployment defect to see at the first invocation.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def read_settings(
    cls: type[T],
    environ: Mapping[str, str],
    *,
    names: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> T:
    """An instance of the dataclass ``cls`` with every field read from ``environ`` (the module says how).

    ``names`` and ``defaults`` are keyed by field name: the variable a field reads where it is not the field's
    name in capitals, and the value of a variable that may be unset.
    """
    names, defaults = names or {}, defaults or {}
    types = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = names.get(field.name, field.name.upper())
        value = environ.get(name, defaults[field.name]) if field.name in defaults else environ[name]
        values[field.name] = _parsed(types[field.name], name, value)
    return cls(**values)


def _parsed(kind: Any, name: str, value: str) -> str | int | bool:
    if kind is bool:
        if value not in ("true", "false"):
            raise ValueError(f"environment variable {name} is {value!r}; allowed: true or false")
        return value == "true"
    if kind is int:
        return int(value)
    if kind is str:
        return value
    raise TypeError(f"a setting read from the environment is a str, an int or a bool, not {kind!r} ({name})")
