"""How long the plan λ takes for the largest run (10,000 trials), and what it writes and returns.

Runs ``lambda/plan/handler.py`` (over ``mlops_platform.training.plan``) in-process against moto S3 and
DynamoDB (no network, no AWS account), with a published config whose one model has a 10 x 10 x 100
grid. It prints the median of a few runs of the whole handler, of its pure parts (building the items,
encoding plan.json), and, as the baseline measured in the same process, of the bare grid expansion
(``itertools.product``), so the overhead of building full training requests is visible. Also the size
of plan.json and of the object the handler returns (Step Functions carries at most 256 KB between states).

    .venv/bin/python benchmarks/plan.py [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REGION = "eu-west-1"
BUCKETS = ("artifacts-zone", "raw-zone", "curated-zone", "features-zone", "predictions-zone")
ENVIRONMENT = {
    # No AWS: fake credentials, no shared config, no instance metadata; moto answers in-process.
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    # Quiet Powertools: no log lines or metric blobs in the timing loop's output.
    "POWERTOOLS_SERVICE_NAME": "plan",
    "POWERTOOLS_METRICS_NAMESPACE": "benchmark",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_TRACE_DISABLED": "true",
    # The plan λ's own settings.
    "CONFIG_BUCKET": "artifacts-zone",
    "ARTIFACTS_BUCKET": "artifacts-zone",
    "RAW_BUCKET": "raw-zone",
    "CURATED_BUCKET": "curated-zone",
    "FEATURES_BUCKET": "features-zone",
    "PREDICTIONS_BUCKET": "predictions-zone",
    "LEDGER_TABLE": "ledger",
    "JOB_PREFIX": "mlops-dev",
    "PROGRESS_BUS_NAME": "mlops-dev-progress",
    "EVENT_SOURCE": "mlops.training",
    "TRAINING_IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/training:cpu",
    "GPU_TRAINING_IMAGE_URI": "111111111111.dkr.ecr.eu-west-1.amazonaws.com/training:gpu",
    "KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111111111111:key/00000000-0000-0000-0000-000000000000",
    "PROCESSING_INSTANCE_TYPE": "ml.m5.large",
    "PROCESSING_LOCAL_STORAGE": "false",
    "BATCH_TRANSFORM_INSTANCE_TYPE": "ml.m5.large",
    "BATCH_TRANSFORM_LOCAL_STORAGE": "false",
    "PROGRESS_INTERVAL_SECONDS": "10",
}
GRID = {
    "max_depth": list(range(1, 11)),
    "eta": [round(0.05 * i, 2) for i in range(1, 11)],
    "gamma": [round(0.1 * i, 1) for i in range(100)],
}


def config() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tenant": "bench",
        "dataset": {
            "name": "breast-cancer",
            "target": "target",
            "problem_type": "binary",
            "features": {f"feature_{i}": "double" for i in range(30)},
        },
        "models": [{"name": "xgboost", "algorithm": "xgboost", "grid": GRID, "combinations": None}],
        "objective": {"metric": "validation:auc", "direction": "maximize", "approval_threshold": 0.95},
        "training": {
            "instance_type": "ml.m5.large",
            "spot": True,
            "max_runtime_seconds": 1800,
            "max_wait_seconds": 3600,
            "gpu": False,
            "local_storage": False,
        },
        "batch_prediction": {"dataset": "breast-cancer", "split": "test"},
        "metrics": ["validation:auc", "validation:accuracy", "validation:logloss"],
    }


def load_plan() -> ModuleType:
    """The handler as Lambda imports it: its folder and, beside it in the asset, ``mlops_platform`` on the path."""
    sys.path[:0] = [str(ROOT / "lambda" / "plan"), str(ROOT)]
    return importlib.import_module("handler")


def median_seconds(runs: int, action: Callable[[int], Any]) -> float:
    times = []
    for run in range(runs):
        start = time.perf_counter()
        action(run)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Context:
    function_name = "plan"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111111111111:function:plan"
    aws_request_id = "benchmark"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (the median is printed)")
    runs = parser.parse_args().runs
    os.environ.update(ENVIRONMENT)
    os.environ.pop("AWS_PROFILE", None)
    sys.dont_write_bytecode = True  # lambda/ is an asset folder: no __pycache__ in it

    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="ledger",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        )
        published = config()
        s3.put_object(
            Bucket="artifacts-zone", Key="artifacts/config/pipelines/bench.json", Body=json.dumps(published).encode()
        )
        plan = load_plan()
        from mlops_platform.training.plan.config import expand
        from mlops_platform.training.plan.request import parse_request
        from mlops_platform.training.plan.trials import build_items, encode_plan

        request = parse_request({"tenant": "bench", "run_id": "bench-pure", "day": "2026-11-24"})
        settings = plan.planner.settings

        names = sorted(GRID)
        product = median_seconds(runs, lambda _: list(itertools.product(*(GRID[name] for name in names))))
        expanded = median_seconds(runs, lambda _: expand(published["models"][0]))
        items = build_items(settings, published, request)
        built = median_seconds(runs, lambda _: build_items(settings, published, request))
        encoded = median_seconds(runs, lambda _: encode_plan(items))
        results: list[dict[str, Any]] = []
        handler = median_seconds(
            runs,
            lambda run: results.append(
                plan.handler({"tenant": "bench", "run_id": f"bench-{run}", "day": "2026-11-24"}, Context())
            ),
        )
        size = s3.head_object(Bucket="artifacts-zone", Key=results[0]["plan"]["Key"])["ContentLength"]

    trials = results[0]["trial_count"]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"plan λ, {trials:,} trials, median of {runs} runs ({python}, {os.cpu_count()} CPUs)")
    print(f"  bare grid expansion (itertools.product)   {product * 1000:9.1f} ms   (baseline)")
    print(f"  expand() into hyperparameter dicts          {expanded * 1000:9.1f} ms")
    print(f"  build_items() (full training requests)     {built * 1000:9.1f} ms")
    print(f"  encode plan.json                            {encoded * 1000:9.1f} ms")
    print(f"  whole handler (moto S3 + DynamoDB)          {handler * 1000:9.1f} ms")
    print(f"  plan.json                                   {size:>9,} bytes ({size / trials:,.0f} per trial)")
    print(f"  returned object                             {len(json.dumps(results[0])):>9,} bytes")


if __name__ == "__main__":
    main()
