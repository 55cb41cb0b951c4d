"""Properties of the request parsers over any input: a finite float32 matrix of the right width, or a BadRequest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlops_platform.data.encoding import plain_encoding
from mlops_platform.serving import codec

WIDTH = 3
FEATURES = ("a", "b", "c")
ENCODING = plain_encoding(FEATURES)
finite_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
matrices = hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.just(WIDTH)), elements=finite_float32)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from([*FEATURES, "id", "features", "x"]), children, max_size=4)
    ),
    max_leaves=10,
)
# Bytes near the formats' own: numbers, separators, quotes, brackets, letters of true/false/null/nan.
near_csv = st.lists(
    st.sampled_from(
        [
            b"1",
            b"-2.5",
            b"1e3",
            b".5",
            b",",
            b"\n",
            b"\r",
            b" ",
            b'"',
            b"[",
            b"]",
            b"nan",
            b"e",
            b"+",
            b"x",
            b"\xff",
            b"1e39",
            b"true",
        ]
    ),
    max_size=30,
).map(b"".join)


def csv_of(matrix: np.ndarray) -> bytes:
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in matrix).encode()


def assert_scorable(matrix: np.ndarray) -> None:
    assert matrix.dtype == np.float32
    assert matrix.ndim == 2
    assert matrix.shape[1] == WIDTH
    assert matrix.shape[0] >= 1
    assert not np.isinf(matrix).any()  # NaN is a missing value (null, an empty cell), never an infinity


def assert_scorable_or_refused(parse):
    """What ``parse`` returns is scorable, or it raised a BadRequest of one line; never anything else."""
    try:
        parsed = parse()
    except codec.BadRequest as error:
        reason = str(error)
        parsed = None
    else:
        reason = ""
        assert_scorable(parsed if isinstance(parsed, np.ndarray) else parsed.features)
    assert "\n" not in reason
    return parsed


@settings(max_examples=200, deadline=None)
@given(matrices)
def test_any_finite_float32_matrix_survives_csv_and_json(matrix):
    np.testing.assert_array_equal(codec.parse_csv(csv_of(matrix), ENCODING), matrix)
    instances = json.dumps({"instances": matrix.tolist()}).encode()
    np.testing.assert_array_equal(codec.parse_json(instances, ENCODING).features, matrix)
    objects = b"\n".join(json.dumps(dict(zip(FEATURES, row, strict=True))).encode() for row in matrix.tolist())
    np.testing.assert_array_equal(codec.parse_json_lines(objects, ENCODING).features, matrix)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60) | near_csv)
def test_csv_bodies_parse_to_a_scorable_matrix_or_a_bad_request(body):
    assert_scorable_or_refused(lambda: codec.parse_csv(body, ENCODING))


@settings(max_examples=300, deadline=None)
@given(st.lists(json_values, max_size=4))
def test_json_bodies_parse_to_a_scorable_matrix_or_a_bad_request(instances):
    for content_type, body in (
        (codec.JSON, json.dumps({"instances": instances}).encode()),
        (codec.JSON_LINES, b"\n".join(json.dumps(value).encode() for value in instances)),
    ):
        batch = assert_scorable_or_refused(lambda: codec.parse(content_type, body, ENCODING))  # noqa: B023
        assert batch is None or not batch.ids or len(batch.ids) == len(batch.features)


@pytest.mark.parametrize("body", [b"1,2,3\n", b"1,2,3", b"1,2,3\r\n4,5,6\r\n", b" 1 , 2 , 3 \n", b"1e0,2E0,-3e-0\n\n"])
def test_the_fast_csv_path_takes_plain_numbers(body):
    assert codec._csv_fast(body, WIDTH) is not None
    np.testing.assert_array_equal(codec._csv_fast(body, WIDTH), codec._csv_careful(body, ENCODING))
