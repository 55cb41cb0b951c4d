"""``python -m mlops_platform.serving <entry point>``: what SageMaker runs (the image's ENTRYPOINT, then its arguments).

- ``serve``: SageMaker's hosting contract, for endpoints and batch transform (``docker run <image> serve``);
- ``batch [--model-dir DIR] [--explain]``: JSON Lines from standard input to standard output
  (the same as ``python -m mlops_platform.serving.batch``).
"""

from __future__ import annotations

import logging
import os
import sys

ENTRY_POINTS = ("serve", "batch")


def main(argv: list[str]) -> int:
    # Before numpy or XGBoost load: OpenMP and OpenBLAS read it once, when they start.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    command = argv[0] if argv else ""
    if command == "serve":
        from mlops_platform.serving.serve import main as serve

        return serve(argv[1:])
    if command == "batch":
        from mlops_platform.serving.batch import main as batch

        return batch(argv[1:])
    print(f"unknown entry point {command!r}; allowed: {', '.join(ENTRY_POINTS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
