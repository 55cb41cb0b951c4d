"""``python -m mlops_training train``: the entry points SageMaker calls (``docker run <image> train``)."""

from __future__ import annotations

import logging
import sys

ENTRY_POINTS = ("train",)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    command = argv[0] if argv else ""
    if command == "train":
        from mlops_training.train import main as train

        return train()
    print(f"unknown entry point {command!r}; allowed: {', '.join(ENTRY_POINTS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
