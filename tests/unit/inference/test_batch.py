"""``python -m mlops_platform.serving.batch``: JSON Lines in, one answer a line out, in order, in bounded chunks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlops_platform.serving.batch import main, run
from mlops_platform.serving.model import load
from tests.conftest import ROOT
from tests.unit.inference.conftest import feature_names, features_of

NAMES = feature_names("binary")


@pytest.fixture(scope="module")
def model(xgboost_dir):
    return load(xgboost_dir)


def lines_of(output: bytes) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]


def test_every_line_is_answered_in_order_across_chunks_with_bad_lines_named(model):
    features = features_of("binary", rows=20).tolist()
    records = [json.dumps({"id": f"r{i}", "features": row}) for i, row in enumerate(features)]
    records[3] = "{not json"
    records[7] = ""
    records[11] = json.dumps({"id": "r11", "features": features[11][:5]})
    records[12] = json.dumps(dict(zip(NAMES, features[12], strict=True)))
    records[15] = json.dumps(features[15])
    sink = io.BytesIO()

    status = run(io.BytesIO("\n".join(records).encode() + b"\n"), sink, model, explain=False, chunk_lines=4)

    answers = lines_of(sink.getvalue())
    assert status == 1
    assert len(answers) == 20
    assert answers[3]["line"] == 4
    assert answers[3]["error"].startswith("line 4 is not valid JSON")
    assert answers[7] == {"line": 8, "error": "line 8 is empty"}
    assert answers[11] == {"line": 12, "id": "r11", "error": "line 12 has 5 values; the model expects 30"}
    scored = [i for i in range(20) if i not in (3, 7, 11)]
    expected = model.score(np.array([features[i] for i in scored], dtype=np.float32)).tolist()
    assert [answers[i]["score"] for i in scored] == expected
    assert [answers[i].get("id") for i in scored] == [None if i in (12, 15) else f"r{i}" for i in scored]


def test_a_clean_input_exits_0_and_explains_when_asked(model):
    features = features_of("binary", rows=3)
    source = io.BytesIO(b"".join(json.dumps(row).encode() + b"\n" for row in features.tolist()))
    sink = io.BytesIO()

    assert run(source, sink, model, explain=True) == 0

    answers = lines_of(sink.getvalue())
    margins = model.margin(features).tolist()
    for answer, margin in zip(answers, margins, strict=True):
        assert list(answer["contributions"]) == [*NAMES, "bias"]
        assert sum(answer["contributions"].values()) == pytest.approx(margin, abs=1e-4)


def test_an_empty_input_gives_an_empty_output(model):
    sink = io.BytesIO()
    assert run(io.BytesIO(b""), sink, model, explain=False) == 0
    assert sink.getvalue() == b""


def test_a_missing_model_exits_2_with_a_reason(tmp_path, capsys):
    assert main(["--model-dir", str(tmp_path)]) == 2
    assert "batch failed: no model under" in capsys.readouterr().err


def test_input_larger_than_a_read_buffer_streams_through_a_subprocess(xgboost_dir, tmp_path):
    """Over 2 MiB in (five chunks of the default 1,000 lines), a bad line in the middle and one at the end."""
    rows = features_of("binary")
    count = 5000
    lines = [
        json.dumps({"id": i, "features": rows[i % len(rows)].tolist()}) + "\n"
        if i not in (2500, count - 1)
        else "[1, 2\n"
        for i in range(count)
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(lines))
    assert source.stat().st_size > 2 * 1024 * 1024

    with source.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "mlops_platform.serving.batch", "--model-dir", str(xgboost_dir)],
            stdin=stdin,
            capture_output=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )

    assert result.returncode == 1, result.stderr.decode()
    answers = lines_of(result.stdout)
    assert len(answers) == count
    assert [a.get("id") for a in answers if "error" not in a] == [i for i in range(count) if i not in (2500, count - 1)]
    assert [a["line"] for a in answers if "error" in a] == [2501, count]
    expected = load(xgboost_dir).score(rows[[i % len(rows) for i in range(10)]]).tolist()
    assert [a["score"] for a in answers[:10]] == expected
    assert result.stderr.decode().strip().endswith(f"2 of {count} lines could not be scored (see their error fields)")
