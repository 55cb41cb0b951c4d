"""``python -m mlops_platform.serving.batch``: score JSON Lines from standard input to standard output.

    python -m mlops_platform.serving.batch [--model-dir DIR] [--explain] < records.jsonl > scores.jsonl

Each input line is an array of feature values in the model's order, an object of feature names,
or ``{"id": ..., "features": <array or object>}``. Output line *n* answers input line *n*:
``{"score": s}`` (with the ``id`` echoed, and ``contributions`` under ``--explain``), or
``{"line": n, "error": "<reason>"}`` for a line that cannot be scored, so no line is ever
dropped. It reads bounded chunks of lines and scores each chunk in one call, so memory stays
flat however long the input is.

Exit status: 0 when every line was scored; 1 when at least one output line is an error (the
output is still complete); 2 when nothing was scored: bad arguments or a model that does not load.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

# Before numpy or XGBoost load: OpenMP and OpenBLAS read it once, when they start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import orjson

from mlops_platform.data.encoding import Encoding
from mlops_platform.serving import codec
from mlops_platform.serving.model import Model, ModelError, load
from mlops_platform.serving.settings import model_directory

CHUNK_LINES = 1000
CHUNK_BYTES = 1024 * 1024


def chunks(stream: BinaryIO, max_lines: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Consecutive lines, at most ``max_lines`` or about ``max_bytes`` at a time (a longer line comes alone)."""
    chunk: list[bytes] = []
    size = 0
    for line in stream:
        chunk.append(line)
        size += len(line)
        if len(chunk) >= max_lines or size >= max_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def score_lines(lines: list[bytes], first: int, model: Model, *, explain: bool) -> tuple[list[bytes], int]:
    """The output lines answering ``lines`` (numbered from ``first``), in order, and how many are errors."""
    features = model.metadata.encoding
    answers: list[dict[str, Any] | None] = [None] * len(lines)
    records: list[Any] = []
    positions: list[int] = []
    for index, line in enumerate(lines):
        try:
            if not line.strip():
                raise codec.BadRequest(f"line {first + index} is empty")
            records.append(orjson.loads(line))
            positions.append(index)
        except orjson.JSONDecodeError as error:
            answers[index] = _error(
                first + index, f"line {first + index} is not valid JSON: {str(error).splitlines()[0]}"
            )
        except codec.BadRequest as error:
            answers[index] = _error(first + index, str(error))
    rows, ids, scorable = _rows(records, positions, first, features, answers)
    if scorable:
        batch = codec.Batch(rows, ids)
        try:
            scored = codec.Scored(model.score(rows), model.contributions(rows) if explain else None)
            for index, prediction in zip(scorable, codec.predictions(scored, batch, model.metadata), strict=True):
                answers[index] = prediction
        except Exception as error:  # every line of the chunk says why, and the next chunk is tried
            for index in scorable:
                answers[index] = _error(first + index, f"prediction failed: {type(error).__name__}: {error}")
    errors = sum(1 for answer in answers if answer is not None and "error" in answer)
    return [orjson.dumps(answer) + b"\n" for answer in answers], errors


def _rows(
    records: list[Any], positions: list[int], first: int, features: Encoding, answers: list[Any]
) -> tuple[np.ndarray, list[Any], list[int]]:
    """The parsed records' feature rows (float32), their ids, and which line each row answers."""
    fast = codec.rows_fast(records, features) if records else None
    if fast is not None:
        return fast, [], positions
    values: list[list[float]] = []
    ids: list[Any] = []
    scorable: list[int] = []
    for index, record in zip(positions, records, strict=True):
        label = f"line {first + index}"
        try:
            row, record_id = codec.record_row(record, features, label)
            if np.isinf(codec.float32(row)).any():
                raise codec.BadRequest(f"{label} has a value outside float32's range")
        except codec.BadRequest as error:
            answers[index] = _error(first + index, str(error), record)
            continue
        values.append(row)
        ids.append(record_id)
        scorable.append(index)
    matrix = np.array(values, dtype=np.float32).reshape(len(values), features.width)
    return matrix, ids if any(i is not None for i in ids) else [], scorable


def _error(line: int, reason: str, record: Any = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"line": line, "error": " ".join(reason.split())[:1000]}
    if isinstance(record, dict) and set(record) <= {"id", "features"} and record.get("id") is not None:
        answer["id"] = record["id"]
    return answer


def run(source: BinaryIO, sink: BinaryIO, model: Model, *, explain: bool, chunk_lines: int = CHUNK_LINES) -> int:
    """Score ``source`` into ``sink``; the exit status (0, or 1 when a line could not be scored)."""
    first = 1
    failed = 0
    for lines in chunks(source, chunk_lines, CHUNK_BYTES):
        output, errors = score_lines(lines, first, model, explain=explain)
        sink.write(b"".join(output))
        first += len(lines)
        failed += errors
    sink.flush()
    if failed:
        print(f"batch: {failed} of {first - 1} lines could not be scored (see their error fields)", file=sys.stderr)
    return 1 if failed else 0


def parse_arguments(argv: Iterable[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mlops_platform.serving.batch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model-dir", type=Path, help="the model's folder (default: $SM_ROOT/model, /opt/ml/model)")
    parser.add_argument("--explain", action="store_true", help="add each feature's contribution and the bias")
    parser.add_argument("--chunk-lines", type=_positive, default=CHUNK_LINES, help=argparse.SUPPRESS)
    return parser.parse_args(list(argv))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1")
    return int(text)


def main(argv: Iterable[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        model = load(arguments.model_dir or model_directory())
    except ModelError as error:
        print(f"batch failed: {error}", file=sys.stderr, flush=True)
        return 2
    return run(sys.stdin.buffer, sys.stdout.buffer, model, explain=arguments.explain, chunk_lines=arguments.chunk_lines)


if __name__ == "__main__":
    sys.exit(main())
