"""``python -m mlops_platform.training <entry point>``: what SageMaker runs (the training image's ENTRYPOINT,
then its arguments).

- ``train``: a training job (``docker run <image> train``);
- ``prepare --config PATH --run-id ID --day YYYY-MM-DD``: the Processing job before training
  (its ContainerArguments);
- ``serve``: SageMaker's hosting contract, for batch transform (``docker run <image> serve``);
- ``baseline``: the Processing job that computes a model's drift baseline before it is registered
  (``mlops_platform.monitoring.baseline_job``);
- ``monitor``: the scheduled drift monitor's Processing job (``mlops_platform.monitoring.job``).
"""

from __future__ import annotations

import logging
import sys

ENTRY_POINTS = ("train", "prepare", "serve", "baseline", "monitor")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    command = argv[0] if argv else ""
    if command == "train":
        from mlops_platform.training.train import main as train

        return train()
    if command == "prepare":
        from mlops_platform.data.prepare import main as prepare

        return prepare(argv[1:])
    if command == "serve":
        from mlops_platform.training.serve import main as serve

        return serve(argv[1:])
    if command == "baseline":
        from mlops_platform.monitoring.baseline_job import main as baseline

        return baseline(argv[1:])
    if command == "monitor":
        from mlops_platform.monitoring.job import main as monitor

        return monitor(argv[1:])
    print(f"unknown entry point {command!r}; allowed: {', '.join(ENTRY_POINTS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
