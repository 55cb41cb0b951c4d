"""The base of every settings model: frozen, no unknown keys, no silent type coercion."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Frozen and strict about unknown keys; numbers and booleans are StrictInt/StrictBool (no "3", no "yes")."""

    model_config = ConfigDict(frozen=True, extra="forbid")
