"""JSON as the platform stores and sends it: strict both ways.

Python's json writes ``NaN`` and ``Infinity`` and reads them back; no other JSON reader does (Athena, jq,
JavaScript). Encoding refuses them (a NaN, or a number such as ``1e400`` parsed as infinity, has no JSON
form and fails here instead of downstream), and so does decoding.
"""

from __future__ import annotations

import json
from typing import Any


def encode(value: Any) -> str:
    """Compact JSON, ASCII only (``\\uXXXX`` escapes keep U+2028 and U+0085 out of line-split readers);
    raises ValueError for a non-finite number."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode(text: str | bytes | None) -> Any:
    """Parse JSON without Python's extensions (``NaN``, ``Infinity``); raises ValueError, also for an empty body."""
    if text is None or not text.strip():
        raise ValueError("the body is empty")
    return json.loads(text, parse_constant=_no_constants)
