"""Build ``data/example/breast-cancer.jsonl``: the example tenant's dataset, as ingestion would store it.

scikit-learn ships the breast cancer dataset (569 rows, 30 features, a 0/1 target), so the file is
rebuilt byte for byte on any machine, with no download. Each row becomes one raw line in
ingestion's format (``{"record_id", "message_id", "received_at", "record"}``), its columns named as
in ``config/pipelines/example.yaml`` (scikit-learn's names, spaces replaced by underscores). The
file is committed so the example tenant can be seeded into the raw zone without scikit-learn;
``--check`` keeps it equal to what this script builds.

    python -m scripts.example_dataset           # write the file
    python -m scripts.example_dataset --check   # exit 1 if the committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

OUTPUT = Path(__file__).resolve().parent.parent / "data" / "example" / "breast-cancer.jsonl"
MESSAGE_ID = "example"
RECEIVED_AT = "2026-01-01T00:00:00.000Z"


def column_name(name: str) -> str:
    return name.replace(" ", "_")


def build() -> bytes:
    """The file's bytes: one compact JSON line per row, keys in the dataset's column order."""
    frame = load_breast_cancer(as_frame=True).frame
    columns = [column_name(str(c)) for c in frame.columns]
    lines = []
    for index, values in enumerate(frame.itertuples(index=False)):
        record = {
            column: (int(value) if column == "target" else float(value))
            for column, value in zip(columns, values, strict=True)
        }
        line = {
            "record_id": f"{MESSAGE_ID}-{index:05d}",
            "message_id": MESSAGE_ID,
            "received_at": RECEIVED_AT,
            "record": record,
        }
        # As ingestion encodes it: strict, compact, ASCII-only JSON.
        lines.append(json.dumps(line, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n")
    return "".join(lines).encode("ascii")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.example_dataset", description="Build the example dataset.")
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs")
    arguments = parser.parse_args(argv)
    content = build()
    rows = content.count(b"\n")
    if arguments.check:
        if not OUTPUT.is_file() or OUTPUT.read_bytes() != content:
            print(
                f"{OUTPUT} differs from what the script builds; run: python -m scripts.example_dataset", file=sys.stderr
            )
            return 1
        print(f"{OUTPUT}: up to date ({rows} rows)")
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(content)
    print(f"wrote {OUTPUT} ({rows} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
