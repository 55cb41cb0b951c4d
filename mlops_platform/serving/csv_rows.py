"""CSV request bodies read cell by cell: the careful reading both images' servers share.

The inference image's codec tries a fast path first and comes here when it declines; the training
image's stop-gap ``serve`` (batch transform) reads every body this way. The standard library only,
so the training image imports it without the inference image's libraries.
"""

from __future__ import annotations

import csv
import io
import math


class BadRequest(Exception):
    """Why a body cannot be scored, in one line."""


def csv_cells(body: bytes, width: int) -> list[tuple[int, list[str]]]:
    """(row number, its ``width`` cells as text) of each row, no header; BadRequest for a row of another width."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        for number, cells in enumerate(reader, start=1):
            if not cells:
                continue  # a blank line, such as the one after the last row
            if len(cells) != width:
                raise BadRequest(f"row {number} has {len(cells)} values; the model expects {width}")
            rows.append((number, cells))
    except csv.Error as error:  # a cell over the reader's 131,072 characters (was a 500)
        raise BadRequest(f"row {reader.line_num} cannot be read as CSV: {error}") from None
    if not rows:
        raise BadRequest("the body holds no rows; send CSV rows of features, no header")
    return rows


def csv_rows(body: bytes, width: int) -> list[list[float]]:
    """Rows of ``width`` finite numbers, no header; BadRequest names the first bad cell."""
    return [
        [_number(cell, f"row {number}, column {column}") for column, cell in enumerate(cells, 1)]
        for number, cells in csv_cells(body, width)
    ]


def _number(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise BadRequest(f"{where} is not a number") from None
    if not math.isfinite(value):
        raise BadRequest(f"{where} is not a finite number")
    return value
